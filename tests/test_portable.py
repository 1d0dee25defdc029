"""The portable profile (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS): one ggml-cpu library per x86-64
level, veclut compiled into each with the kernel sets that level runs; ggml loads the best-scoring
library this CPU runs and veclut picks, inside it, the best kernel set. qemu-user's CPU models stand
in for older CPUs. llama-cpp-python bound to the build finds the libraries, generates and serves."""

import dataclasses
import os
import platform
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import info_fields, qemu_x86, run_veclut, variant_scores
from serving import Server
from veclut import cpuinfo
from veclut.matrix import load_matrix, run_matrix

pytestmark = pytest.mark.build

# The x86-64 variants of the pinned ggml (ggml/src/CMakeLists.txt) -> the kernel sets veclut compiles
# into each: avx512 where the variant has AVX-512 F/BW/VL, avx2 where it has AVX2 (with FMA, F16C).
VARIANT_KERNEL_SETS = {
    "x64": "scalar", "sse42": "scalar", "sandybridge": "scalar", "ivybridge": "scalar", "piledriver": "scalar",
    "haswell": "avx2,scalar", "alderlake": "avx2,scalar",
    **dict.fromkeys(["skylakex", "cannonlake", "cascadelake", "icelake", "cooperlake", "zen4", "sapphirerapids"],
                    "avx512,avx2,scalar"),
}
# qemu-user CPU model -> the variant ggml must load and the kernel set veclut must choose
OLDER_CPUS = [
    ("qemu64", "x64", "scalar"),         # x86-64 baseline: SSE2, no SSE4.2
    ("Nehalem", "sse42", "scalar"),      # SSE4.2, no AVX
    ("SandyBridge", "sandybridge", "scalar"),  # AVX, no AVX2
    ("Haswell", "haswell", "avx2"),      # AVX2, no AVX-512
]


@pytest.fixture(scope="module")
def portable(builds):
    if platform.machine() != "x86_64":
        pytest.skip(f"the portable profile's tests cover x86-64's CPU variants; this machine is {platform.machine()}")
    return builds.get("portable")


def _info(result, prefix=()) -> dict[str, str]:
    info = subprocess.run([*prefix, str(result.bin_dir / "veclut-info")], capture_output=True, text=True, timeout=600)
    assert info.returncode == 0, (info.returncode, info.stderr[-1000:])
    return info_fields(info.stdout)


def _kernel_sets_in(library) -> str:
    """The kernel sets compiled into one CPU library, read from its symbol table (the ternary and
    2-bit set objects the run-time choice picks among), so also for libraries this CPU cannot load."""
    symbols = subprocess.run(["nm", "-C", "--defined-only", str(library)], capture_output=True, text=True, check=True).stdout
    ternary = [name for name in ("avx512", "avx2", "scalar") if f"veclut::{name}_kernels()::set" in symbols]
    two_bit = [name for name in ("avx512", "avx2", "scalar") if f"veclut::q2_{name}_kernels()::set" in symbols]
    assert ternary == two_bit, (library.name, ternary, two_bit)
    return ",".join(ternary)


def test_every_variant_is_built_with_veclut(portable):
    libraries = {p.name.removeprefix("libggml-cpu-").removesuffix(".so"): p for p in portable.bin_dir.glob("libggml-cpu-*.so")}
    assert set(libraries) == set(VARIANT_KERNEL_SETS), "the pinned ggml's x86 variants changed: update VARIANT_KERNEL_SETS"
    assert not (portable.bin_dir / "libggml-cpu.so").exists()
    for variant, library in libraries.items():
        exported = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True, check=True).stdout
        assert re.search(r" T veclut_get_proc_address$", exported, re.M), f"{library.name} lacks veclut"
        assert _kernel_sets_in(library) == VARIANT_KERNEL_SETS[variant], variant


def test_this_cpu_gets_the_best_variant_and_kernel_set(portable):
    f = _info(portable)
    scores = variant_scores(f)
    assert set(scores) == set(VARIANT_KERNEL_SETS)
    assert f["cpu_variant"] == max(scores, key=scores.get) and scores[f["cpu_variant"]] > 0, f
    assert f["kernel_sets_compiled"] == VARIANT_KERNEL_SETS[f["cpu_variant"]]
    have = cpuinfo.features()
    best = "avx512" if have["AVX-512"] else "avx2" if have["AVX2"] else "scalar"
    assert f["active_kernel_set"] == best, f
    if not have["AVX-512"]:  # a variant compiled for AVX-512 scores 0 here: ggml never loads it
        assert all(scores[v] == 0 for v, sets in VARIANT_KERNEL_SETS.items() if "avx512" in sets), scores


@pytest.mark.parametrize("cpu, variant, kernels", OLDER_CPUS)
def test_older_cpu_gets_its_variant_and_kernel_set(portable, cpu, variant, kernels):
    f = _info(portable, [*qemu_x86(), "-cpu", cpu])
    assert f["cpu_variant"] == variant, f
    assert f["kernel_sets_compiled"] == VARIANT_KERNEL_SETS[variant]
    assert f["active_kernel_set"] == kernels
    scores = variant_scores(f)
    assert scores[variant] == max(scores.values()) > 0
    assert all(scores[v] == 0 for v, sets in VARIANT_KERNEL_SETS.items() if "avx512" in sets), scores


def test_no_cpu_library_to_load_is_one_sentence(portable, tmp_path):
    """veclut-info and libggml copied without the CPU libraries: nothing to load, said in one line."""
    import shutil

    for path in [portable.bin_dir / "veclut-info", *portable.bin_dir.glob("libggml.so*"), *portable.bin_dir.glob("libggml-base.so*")]:
        shutil.copy(path, tmp_path / path.name, follow_symlinks=True)
    # LD_LIBRARY_PATH wins over the build's RUNPATH, so libggml (and its search) is the copy's
    info = subprocess.run([str(tmp_path / "veclut-info")], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "LD_LIBRARY_PATH": str(tmp_path)})
    assert info.returncode == 1, (info.returncode, info.stderr)
    lines = info.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("veclut-info: found no ggml CPU library this CPU can run"), lines


@pytest.mark.parametrize("cpu, variant, kernels", [c for c in OLDER_CPUS if c[0] in ("Nehalem", "Haswell")])
def test_matrix_passes_on_an_older_cpu(portable, cpu, variant, kernels):
    """The kernel matrix on every kernel set of the variant ggml loads under qemu's CPU model. The
    quick matrix runs natively (test_kernels: portable is a default profile); under qemu-user it
    takes about 20 times as long, so this is the smaller one the emulated arm64 profiles run."""
    emulated = dataclasses.replace(portable.profile, runner=(*qemu_x86(), "-cpu", cpu))
    rows = run_matrix(emulated, portable.bin_dir, load_matrix("emulated"))
    failed = [r for r in rows if not r["pass"]]
    assert not failed, f"{len(failed)} failing cases, first: {failed[0]}"
    assert {r["kernels"] for r in rows} == set(VARIANT_KERNEL_SETS[variant].split(","))
    assert {"I2_V", "I1_V", "TQ2_0+", "TQ1_0+", "Q2_V", "Q2_0+"} <= {r["variant"] for r in rows}


def _loaded_from(log: str, portable) -> str:
    """The CPU variant ggml's loader names in a llama.cpp log."""
    match = re.search(r"loaded CPU backend from (\S+)/libggml-cpu-(\w+)\.so", log)
    assert match, log[-3000:]
    assert match[1] == str(portable.bin_dir), match[0]
    return match[2]


def test_llama_cpp_python_generates_on_the_portable_build(portable, quantized):
    """llama-cpp-python (pointed at the build by LLAMA_CPP_LIB_PATH) finds the variant libraries
    beside libggml, loads the one veclut-info names, and runs the I2_V model on veclut's buffer."""
    model = quantized("I2_V")
    result = run_veclut("generate", str(model), "-p", "ROMEO.\n", "-n", "24", "--temp", "0", "--threads", "2",
                        "--verbose", env={"LLAMA_CPP_LIB_PATH": str(portable.bin_dir)}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.strip()) > 10, result.stdout
    assert _loaded_from(result.stderr, portable) == _info(portable)["cpu_variant"]
    assert "CPU_VECLUT model buffer size" in result.stderr


def test_llama_cpp_python_serves_on_the_portable_build(portable, quantized):
    server = Server(quantized("I2_V"), "--threads", "2", "--verbose", env={"LLAMA_CPP_LIB_PATH": str(portable.bin_dir)})
    try:
        with server.client() as client:
            response = client.post("/v1/completions", json={"prompt": "JULIET.\n", "max_tokens": 16, "temperature": 0})
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["text"]
        variant = _info(portable)["cpu_variant"]
        assert _loaded_from(server.output(), portable) == variant
        # the server process (veclut serve execs it) maps CPU libraries of this build only; besides the
        # chosen one, glibc keeps the first one ggml scored mapped (it holds GNU-unique symbols)
        maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
        mapped = set(re.findall(r"\s(/\S+)/libggml-cpu-(\w+)\.so$", maps, re.M))
        assert (str(portable.bin_dir), variant) in mapped and {d for d, _ in mapped} == {str(portable.bin_dir)}, mapped
    except httpx.TransportError as err:
        raise AssertionError(f"{err}\n{server.output()[-3000:]}") from None
    finally:
        server.stop()
