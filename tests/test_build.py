"""Build-backed tests: the patched tree builds, its programs run, and Python is bound to it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_veclut

pytestmark = pytest.mark.build


def _run(profile_result, program, *args, timeout=300):
    cmd = [*profile_result.profile.runner, str(profile_result.bin_dir / program), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_every_native_program_is_built(native_build):
    missing = [p for p in native_build.profile.programs if not (native_build.bin_dir / p).is_file()]
    assert missing == []
    for lib in ("libllama.so", "libggml.so", "libggml-base.so", "libggml-cpu.so"):
        assert (native_build.bin_dir / lib).exists()


def test_llama_quantize_runs(native_build):
    result = _run(native_build, "llama-quantize", "--help")
    assert "usage:" in result.stdout
    assert "TQ2_0" in result.stdout


def test_veclut_buffer_type_is_registered(builds, profile_name):
    """ggml itself (through the CPU device's extra buffer types) reports veclut's buffer type."""
    result = builds.runnable(profile_name)
    info = _run(result, "veclut-info")
    assert info.returncode == 0, info.stdout + info.stderr
    assert "extra_buffer_type: CPU_VECLUT" in info.stdout
    assert "veclut_registered: yes" in info.stdout


def test_profiles_compile_for_what_they_claim(builds, profile_name):
    info = _run(builds.runnable(profile_name), "veclut-info").stdout
    expected = {
        "scalar": {"avx2": "0", "avx512": "0", "neon": "0"},
        "avx2": {"avx2": "1", "avx512": "0"},
        "asan": {"avx2": "1", "avx512": "0"},
        "avx512": {"avx2": "1", "avx512": "1", "avx512_vnni": "1", "avx512_vbmi": "1"},
        "arm64": {"neon": "1", "dotprod": "1", "avx2": "0"},
        "arm64-nodot": {"neon": "1", "dotprod": "0", "avx2": "0"},
        "arm64-portable": {"neon": "1", "dotprod": "1", "avx2": "0"},  # its qemu CPU, neoverse-n1: armv8.2_2
    }.get(profile_name, {})
    for feature, value in expected.items():
        assert f"build_feature_{feature}: {value}" in info, (profile_name, feature, info)
    # the SIMD kernel set of the ISA is compiled in next to the scalar reference
    best = {"scalar": "scalar", "avx2": "avx2", "asan": "avx2", "avx512": "avx512", "arm64": "neon",
            "arm64-nodot": "neon", "arm64-portable": "neon"}.get(profile_name)
    if best:
        assert f"kernel_sets: {best}" in info and "scalar" in info, info
    if profile_name == "asan":  # the kernels and the test program run under the sanitizers
        result = builds.runnable(profile_name)
        for name in ("libggml-cpu.so", "test-veclut"):
            linked = subprocess.run(["ldd", str(result.bin_dir / name)], capture_output=True, text=True).stdout
            assert "libasan" in linked and "libubsan" in linked, (name, linked)


def test_python_is_bound_to_the_patched_build(native_build):
    code = (
        "import llama_cpp, gguf, os, pathlib;"
        "lib = pathlib.Path(llama_cpp.__file__).parent / 'lib' / 'libllama.so';"
        "print(os.path.realpath(lib));"
        "print(pathlib.Path(gguf.__file__).resolve());"
        "print(llama_cpp.llama_print_system_info().decode())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lib_path, gguf_path, system_info = result.stdout.splitlines()[:3]
    assert Path(lib_path) == (native_build.bin_dir / "libllama.so").resolve()
    assert str(native_build.bin_dir.parent.parent / "src") in gguf_path
    assert "CPU" in system_info


def test_second_build_has_nothing_to_do(native_build):
    result = run_veclut("build", "--profile", "native")
    assert result.returncode == 0, result.stderr
    assert "up to date (nothing to rebuild)" in result.stderr


def test_shipped_series_applies_to_the_pinned_tree(native_build):
    result = run_veclut("patch", "--check")
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r": applies", result.stdout)) >= 2
