"""Never run a kernel the CPU cannot execute: veclut picks its kernel set from the CPU at run
time, refuses a VECLUT_KERNELS set the CPU lacks, and a library compiled for extensions the CPU
lacks stops with one sentence instead of an illegal instruction. qemu-user's x86-64 CPU models
stand in for older CPUs."""

import os
import subprocess

import pytest

from conftest import info_fields, qemu_x86
from veclut import cpuinfo

pytestmark = pytest.mark.build

REFUSAL = "veclut: this ggml-cpu library was compiled for CPU extensions this CPU lacks"
# qemu-user CPU models: AVX2 without AVX-512, and SSE4.2 without AVX
HASWELL, NEHALEM = ["-cpu", "Haswell"], ["-cpu", "Nehalem"]


def _program_lines(stderr: str) -> list[str]:
    """What the program printed: qemu warns about CPU-model features TCG lacks (pcid, rtm, ...)
    on stderr too, on hosts where the model's features differ from the host's."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("qemu-x86_64: warning:")]


def _info(result, prefix=(), env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, str(result.bin_dir / "veclut-info")], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_kernel_set_is_one_this_cpu_runs(native_build):
    info = _info(native_build)
    assert info.returncode == 0, info.stderr
    f = info_fields(info.stdout)
    runnable, compiled = f["kernel_sets"].split(","), f["kernel_sets_compiled"].split(",")
    assert set(runnable) <= set(compiled) and runnable[-1] == "scalar"
    assert f["active_kernel_set"] == runnable[0]
    have = cpuinfo.features()
    needs = {"avx512": "AVX-512", "avx2": "AVX2", "neon": "NEON"}
    for name in runnable:
        assert name not in needs or have[needs[name]], (name, f["cpu_features"])
    # a set compiled in but not runnable is named with the feature this CPU lacks
    for name in set(compiled) - set(runnable):
        assert f"skipped {name} (this CPU lacks" in f["kernel_choice"]


def test_kernel_set_this_cpu_cannot_run_is_refused_in_one_sentence(native_build):
    runnable = info_fields(_info(native_build).stdout)["kernel_sets"].split(",")
    wanted = next((k for k in ("avx512", "avx2", "neon") if k not in runnable), "no-such-set")
    info = _info(native_build, env={"VECLUT_KERNELS": wanted})
    assert info.returncode == 1, (info.returncode, info.stderr)
    lines = info.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"veclut: VECLUT_KERNELS={wanted} is not a kernel set"), lines
    assert f"choose one of {','.join(runnable)}" in lines[0]


def test_a_build_for_extensions_this_cpu_lacks_stops_with_one_sentence(builds):
    """The avx512 profile on a CPU without AVX-512 (this machine's, or qemu's Haswell model)."""
    result = builds.get("avx512")
    prefix = [] if cpuinfo.lacking(result.profile) else [*qemu_x86(), *HASWELL]
    info = _info(result, prefix)
    assert info.returncode == 1, (info.returncode, info.stderr[-500:])  # not a signal (SIGILL: -4)
    lines = _program_lines(info.stderr)
    assert len(lines) == 1 and lines[0].startswith(REFUSAL) and "avx512f" in lines[0], lines
    assert info.stdout == ""


@pytest.mark.parametrize("profile, cpu, expected", [
    ("scalar", NEHALEM, "scalar"),   # SSE4.2, no AVX
    ("avx2", HASWELL, "avx2"),       # AVX2, no AVX-512
])
def test_older_cpu_models_pick_the_right_set(builds, profile, cpu, expected):
    result = builds.get(profile)
    info = _info(result, [*qemu_x86(), *cpu])
    assert info.returncode == 0, info.stderr[-500:]
    f = info_fields(info.stdout)
    assert f["active_kernel_set"] == expected, f
    assert "avx512" not in f["cpu_features"]


def test_native_build_under_a_cpu_without_avx_stops_with_one_sentence(native_build):
    compiled = info_fields(_info(native_build).stdout)
    if compiled["build_feature_avx2"] != "1":
        pytest.skip("this machine's native build does not use AVX2, so an SSE4.2 CPU can run it")
    info = _info(native_build, [*qemu_x86(), *NEHALEM])
    assert info.returncode == 1, (info.returncode, info.stderr[-500:])
    lines = _program_lines(info.stderr)
    assert len(lines) == 1 and lines[0].startswith(REFUSAL) and "avx2" in lines[0], lines
