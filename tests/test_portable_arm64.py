"""The arm64-portable profile: ggml's Linux Arm variants (GGML_CPU_ALL_VARIANTS, armv8.0 ... armv9.2),
veclut compiled into each, cross-compiled with clang. qemu-user's Arm CPU models stand in for the
CPUs that pick each variant; veclut's NEON set takes its dot-product path only where the variant was
compiled with DOTPROD."""

import dataclasses
import re
import shutil
import subprocess

import pytest

from conftest import info_fields, variant_scores
from veclut.matrix import load_matrix, run_matrix

pytestmark = pytest.mark.build

# The pinned ggml's Linux Arm variants (ggml/src/CMakeLists.txt) -> compiled with the dot-product
# extension (veclut's NEON set then uses SDOT; without it, widening multiplies)
ARM_VARIANT_DOTPROD = {
    "armv8.0_1": False,
    **dict.fromkeys(["armv8.2_1", "armv8.2_2", "armv8.2_3", "armv8.6_1", "armv8.6_2", "armv9.2_1", "armv9.2_2"], True),
}
# qemu-aarch64 CPU model -> the variant ggml must load there
ARM_CPUS = [
    ("cortex-a53", "armv8.0_1"),  # Armv8.0: NEON only
    ("neoverse-n1", "armv8.2_2"),  # Armv8.2 with dot product and fp16 arithmetic, no SVE (the profile's runner)
    ("a64fx", "armv8.0_1"),       # SVE without the dot-product extension: every later variant has DOTPROD
    ("max", "armv9.2_2"),         # everything qemu emulates: SVE2, i8mm, SME
]


@pytest.fixture(scope="module")
def arm_portable(builds):
    return builds.get("arm64-portable")


def _on(profile, cpu: str):
    """The profile with its qemu runner set to another CPU model."""
    runner = list(profile.runner)
    runner[runner.index("-cpu") + 1] = cpu
    return dataclasses.replace(profile, runner=tuple(runner))


def _info(result, cpu: str) -> dict[str, str]:
    info = subprocess.run([*_on(result.profile, cpu).runner, str(result.bin_dir / "veclut-info")],
                          capture_output=True, text=True, timeout=600)
    assert info.returncode == 0, (cpu, info.returncode, info.stderr[-1000:])
    return info_fields(info.stdout)


def _binutil(name: str) -> str:
    path = shutil.which(f"aarch64-linux-gnu-{name}")
    assert path, f"aarch64-linux-gnu-{name} comes with g++-aarch64-linux-gnu, a required tool of the profile"
    return path


def test_every_arm_variant_is_built_with_veclut(arm_portable):
    libraries = {p.name.removeprefix("libggml-cpu-").removesuffix(".so"): p
                 for p in arm_portable.bin_dir.glob("libggml-cpu-*.so")}
    assert set(libraries) == set(ARM_VARIANT_DOTPROD), "the pinned ggml's Arm variants changed: update ARM_VARIANT_DOTPROD"
    for variant, library in libraries.items():
        exported = subprocess.run([_binutil("nm"), "-D", "--defined-only", str(library)],
                                  capture_output=True, text=True, check=True).stdout
        assert re.search(r" T veclut_get_proc_address$", exported, re.M), f"{library.name} lacks veclut"
        symbols = subprocess.run([_binutil("nm"), "-C", "--defined-only", str(library)],
                                 capture_output=True, text=True, check=True).stdout
        assert "veclut::neon_kernels()::set" in symbols and "veclut::q2_neon_kernels()::set" in symbols, variant


def test_the_plain_armv8_variant_has_no_dot_product_instruction(arm_portable):
    """An Armv8.0 CPU (no SDOT / UDOT) must be able to run every instruction of the variant ggml
    gives it, veclut's kernels included; the DOTPROD variants do use them."""
    def dot_instructions(variant: str) -> int:
        library = arm_portable.bin_dir / f"libggml-cpu-{variant}.so"
        text = subprocess.run([_binutil("objdump"), "-d", "--no-show-raw-insn", str(library)],
                              capture_output=True, text=True, check=True).stdout
        return len(re.findall(r"\t[su]dot\t", text))

    assert dot_instructions("armv8.0_1") == 0
    assert dot_instructions("armv8.2_1") > 0


@pytest.mark.parametrize("cpu, variant", ARM_CPUS)
def test_arm_cpu_gets_its_variant_and_kernel_set(arm_portable, cpu, variant):
    f = _info(arm_portable, cpu)
    scores = variant_scores(f)
    assert set(scores) == set(ARM_VARIANT_DOTPROD)
    assert f["cpu_variant"] == variant and scores[variant] == max(scores.values()) > 0, f
    assert f["active_kernel_set"] == "neon" and f["kernel_sets_compiled"] == "neon,scalar", f
    assert f["build_feature_dotprod"] == ("1" if ARM_VARIANT_DOTPROD[variant] else "0"), f
    if not ARM_VARIANT_DOTPROD[variant]:  # every DOTPROD variant is refused on this CPU
        assert all(scores[v] == 0 for v, dot in ARM_VARIANT_DOTPROD.items() if dot), scores


@pytest.mark.parametrize("cpu, variant", [c for c in ARM_CPUS if c[0] != "a64fx"])
def test_kernels_pass_in_the_variant_each_cpu_gets(arm_portable, cpu, variant):
    """The smoke matrix (every type, both paths, 1-33 tokens, 1 and 3 threads) in the library ggml
    loads on each CPU model: the full emulated matrix runs on the gcc-built arm64 and arm64-nodot
    profiles, whose NEON code is the same; this proves the clang-built variants load and compute."""
    rows = run_matrix(_on(arm_portable.profile, cpu), arm_portable.bin_dir, load_matrix("smoke"))
    failed = [r for r in rows if not r["pass"]]
    assert not failed, f"{len(failed)} failing cases, first: {failed[0]}"
    assert {r["kernels"] for r in rows} == {"neon", "scalar"}
    assert {"I2_V", "I1_V", "TQ2_0+", "TQ1_0+", "Q2_V", "Q2_0+", "Q1_0+"} <= {r["variant"] for r in rows}
