"""The kernel equivalence matrix on every build profile: veclut vs float64 vs upstream."""

import pytest

from veclut.matrix import Run, load_matrix, run_matrix, summarize

pytestmark = pytest.mark.build


def _check(builds, profile_name, level):
    result = builds.runnable(profile_name)
    rows = run_matrix(result.profile, result.bin_dir, load_matrix(level))
    summary = summarize(rows)
    failed = [r for r in rows if not r["pass"]]
    report = "\n".join(f"{v}: {s}" for v, s in summary.items())
    assert not failed, f"{len(failed)} failing cases, first: {failed[0]}\n{report}"
    assert all(r["lossless"] for r in rows)
    # every variant of the matrix ran, on every kernel set of the build, the scalar reference included
    assert {"I2_V", "I1_V", "TQ2_0+", "TQ1_0+", "I2_V/generic", "I1_V/generic",
            "Q2_V", "Q2_0+", "Q2_V/generic", "Q1_0+"} <= {r["variant"] for r in rows}
    assert "scalar" in {r["kernels"] for r in rows}
    # I1_V / TQ1_0 in both of their layouts, whichever one each kernel set chooses by default
    assert {"VECLUT_I1_COMPACT=1", "VECLUT_I1_COMPACT=0"} <= {r.get("env") for r in rows if r["variant"] == "I1_V"}


def test_quick_matrix(builds, profile_name):
    _check(builds, profile_name, builds.runnable(profile_name).profile.check_matrix)


@pytest.mark.slow
def test_full_matrix(builds, profile_name):
    _check(builds, profile_name, "full")


def test_code_bytes_no_valid_file_holds_are_read_as_to_float_reads_them(builds):
    """I2_V / I1_V bytes above the largest code come only from a damaged file, and row validation is
    off by default: ggml's generic path (vec_dot) indexed its trit tables with them, past the end
    for I1_V's 243-255. Every path must read such a byte as the reference decode does (its low
    digits), on every kernel set of the build."""
    result = builds.runnable("native")
    runs = [Run(shapes=("33x512",), tokens=(1, 7, 33), threads=(1, 3), inputs=("corrupt",),
                variants=("I2_V", "I1_V", "I2_V/generic", "I1_V/generic"), path=path) for path in ("dot", "lut")]
    rows = run_matrix(result.profile, result.bin_dir, runs)
    failed = [r for r in rows if not r["pass"]]
    assert rows and not failed, f"{len(failed)} of {len(rows)} cases fail, first: {failed[0]}"


def test_matrix_config_parses():
    runs = load_matrix("quick")
    assert any(r.path == "lut" for r in runs) and any(r.path == "dot" for r in runs)
    full = load_matrix("full")
    shapes = {s for r in full for s in r.shapes}
    assert {"2560x2560", "14336x4096", "4096x14336", "2048x8192"} <= shapes
    tokens = {n for r in full for n in r.tokens}
    assert all({("VECLUT_I1_COMPACT", "1"), ("VECLUT_I1_COMPACT", "0")} <= {e for r in load_matrix(level) for e in r.env}
               for level in ("quick", "emulated", "full"))
    assert {1, 2, 7, 8, 31, 32, 33, 64, 255, 256, 257, 512} <= tokens
