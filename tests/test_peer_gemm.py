"""GEMM against a peer (bench-peer-gemm: bench-veclut's measurement compiled against another
runtime's ggml) and the speed targets checked on a report. The peer itself is not built here
(too slow for CI): its program is a script, and the real program is compiled against this
checkout's own ggml build, which it must measure exactly as bench-veclut does."""

import json
import stat

import pytest

from veclut import bench, bench_peer, bench_targets, peer
from veclut.bench_report import markdown
from veclut.config import load_peer
from veclut.errors import VeclutError

SUITE = {"tiny": {"name": "tiny", "gemm_shapes": ["256x512", "128x256"]}}


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VECLUT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def ik():
    return load_peer("ik_llama")


def _script(path, text):
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _gemm_row(type_name, gops, M=256, K=512, N=1, threads=1):
    return {"type": type_name, "M": M, "K": K, "N": N, "threads": threads, "gops": gops, "gops_min": gops,
            "gops_max": gops, "suite": "tiny"}


FAKE_GEMM = """
types=""; while [ $# -gt 0 ]; do [ "$1" = --types ] && types="$2"; shift; done
echo "$types" > "$(dirname "$0")/asked"
for t in $(echo "$types" | tr , ' '); do
  echo "{\\"type\\": \\"$t\\", \\"M\\": 256, \\"K\\": 512, \\"N\\": 1, \\"threads\\": 1, \\"gops\\": 50.0, \\"gops_min\\": 40.0, \\"gops_max\\": 60.0}"
done
"""


def test_peer_gemm_rows_are_labelled_and_divided_by_veclut_rows(ik, tmp_path):
    program = _script(tmp_path / "bench-peer-gemm", FAKE_GEMM)
    rows, info = bench_peer.run_gemm_rows(ik, {"tiny": SUITE["tiny"]}, ["I2_V", "TQ2_0"], [1], [1], 3,
                                          build=lambda p: program)
    assert info["status"] == "measured"
    assert (tmp_path / "asked").read_text().strip() == "IQ2_BN_R4,IQ2_BN", "only the types compared with I2_V"
    assert {r["type"] for r in rows} == {"ik:IQ2_BN_R4", "ik:IQ2_BN"} and all(r["suite"] == "tiny" for r in rows)
    ratios = bench_peer.gemm_ratios([_gemm_row("I2_V", 75.0), _gemm_row("I2_V", 10.0, N=8)] + rows, ik)
    assert {(r["ratio"], r["N"]): r["speedup"] for r in ratios} == {("I2_V/ik:IQ2_BN_R4", 1): 1.5,
                                                                   ("I2_V/ik:IQ2_BN", 1): 1.5}


def test_a_peer_gemm_that_cannot_be_built_or_run_is_reported_missing(ik, tmp_path):
    def no_build(p):
        raise VeclutError("building bench-peer-gemm for ik_llama failed; the full log is /x.log")

    rows, info = bench_peer.run_gemm_rows(ik, SUITE, ["I2_V"], [1], [1], 1, build=no_build)
    assert rows == [] and info["status"] == "missing" and "/x.log" in info["reason"]
    broken = _script(tmp_path / "bench-peer-gemm", 'echo "bench-peer-gemm: unknown type IQ2_BN_R4" >&2\nexit 2\n')
    rows, info = bench_peer.run_gemm_rows(ik, SUITE, ["I2_V"], [1], [1], 1, build=lambda p: broken)
    assert rows == [] and info["status"] == "missing" and "unknown type IQ2_BN_R4" in info["reason"]
    assert set(info["failed"]) == {"tiny GEMM"}


def test_a_peer_measured_in_one_part_only_is_measured_with_the_other_part_failed(ik):
    ok = {**bench_peer.describe(ik), "status": "measured", "failed": {"s ik:IQ1_BN": "quantize failed"}}
    bad = {**bench_peer.describe(ik), "status": "missing", "reason": "cmake failed"}
    merged = bench_peer.merge_status({"GEMM": bad, "end to end": ok})
    assert merged["status"] == "measured"
    assert merged["failed"] == {"s ik:IQ1_BN": "quantize failed", "GEMM": "cmake failed"}
    both = bench_peer.merge_status({"GEMM": bad, "end to end": {**bad, "reason": "no network"}})
    assert both["status"] == "missing" and both["reason"] == "cmake failed; no network"


def _e2e(type_name, median, test, roofline=None):
    row = {"suite": "s", "type": type_name, "test": test, "threads": 2, "unit": "t/s", "median": median,
           "min": median, "max": median}
    return {**row, "roofline": roofline} if roofline is not None else row


TARGETS = [
    {"part": "e2e", "type": ["I2_V"], "vs": ["ik:IQ2_BN_R4"], "tests": ["pp512"], "at_least": 1.25},
    {"part": "e2e", "type": ["I2_V", "I1_V"], "vs": ["ik:IQ2_BN_R4", "ik:IQ2_BN"], "fastest": True,
     "tests": ["tg128"], "at_least": 1.15},
    {"part": "roofline", "type": ["I2_V"], "tests": ["tg128"], "at_least": 0.8},
    {"part": "gemm", "type": ["I2_V"], "vs": ["ik:IQ2_BN_R4"], "n_min": 32, "at_least": 1.25},
    {"part": "e2e", "type": ["I2_V"], "vs": ["ik:IQ2_BN_R4"], "tests": ["parallel4 tg"], "at_least": 1.25},
]


def test_targets_hold_only_where_every_measured_point_reaches_the_bound():
    report = {
        "e2e": [_e2e("I2_V", 130, "pp512"), _e2e("ik:IQ2_BN_R4", 100, "pp512"),
                _e2e("I2_V", 60, "tg128", roofline=0.85), _e2e("I1_V", 70, "tg128"),
                _e2e("ik:IQ2_BN_R4", 50, "tg128"), _e2e("ik:IQ2_BN", 58, "tg128")],
        "gemm": [_gemm_row("I2_V", 130, N=32), _gemm_row("ik:IQ2_BN_R4", 100, N=32),
                 _gemm_row("I2_V", 110, N=256), _gemm_row("ik:IQ2_BN_R4", 100, N=256),
                 _gemm_row("I2_V", 10, N=1), _gemm_row("ik:IQ2_BN_R4", 100, N=1)],
    }
    got = bench_targets.check(report, TARGETS)
    assert [e["holds"] for e in got] == [True, False, True, False, None]
    tg = got[1]  # divided by the fastest peer type in each test (IQ2_BN, 58), not by each
    assert (tg["points"], tg["met"]) == (2, 1) and tg["worst"]["where"] == "s tg128 I2_V / ik:IQ2_BN"
    assert tg["worst"]["value"] == pytest.approx(60 / 58)
    gemm = got[3]  # N = 1 is outside the target; N = 256 misses it
    assert gemm["points"] == 2 and gemm["worst"]["value"] == pytest.approx(1.1) and "N=256" in gemm["worst"]["where"]
    lines = [bench_targets.summary_line(e) for e in got]
    assert lines[0].startswith("I2_V pp512: ≥ 1.25× ik:IQ2_BN_R4 — holds: 1 of 1 points")
    assert "— not reached: 1 of 2 points; worst 1.03×" in lines[1] and "the fastest of" in lines[1]
    assert "85 %" in lines[2] and lines[4].endswith("— not measured")


def test_the_report_lists_the_measured_targets_and_counts_the_rest():
    machine = {"cpu": "CPU X", "cores": 2, "features": ["AVX2"], "profile": "native", "kernels": "avx2",
               "veclut_commit": "abc", "llama_cpp_commit": "0c1e", "date": "today"}
    report = {"machine": machine, "command": "veclut bench e2e", "e2e": [_e2e("I2_V", 130, "pp512"),
                                                                         _e2e("ik:IQ2_BN_R4", 100, "pp512")]}
    report["targets"] = bench_targets.check(report, TARGETS)
    text = markdown(report, [])
    assert "## Targets" in text and "- ✅ I2_V pp512: ≥ 1.25× ik:IQ2_BN_R4 — holds" in text
    assert "- 4 more not measured by this run" in text


def test_the_shipped_targets_are_well_formed():
    targets = bench.defaults()["targets"]
    assert targets and all(t["part"] in bench_targets.POINTS for t in targets)
    assert all(t["at_least"] > 0 and t["type"] for t in targets)
    assert all(t.get("tests") for t in targets if t["part"] != "gemm")


def test_bench_peer_gemm_measures_like_bench_veclut(native_build, tmp_path):
    """The peer's program, compiled against this checkout's own ggml (the patched tree's headers,
    the native build's shared libraries), measures an upstream type as bench-veclut does: the same
    rows, the same weight bytes, speeds that are numbers."""
    tree = native_build.build_dir.parent / "src" / "vendor" / "llama.cpp"
    libs = [native_build.bin_dir / f"lib{name}.so" for name in ("ggml", "ggml-base", "ggml-cpu")]
    program = peer.build_gemm_program("bench-peer-gemm for the native build", tree, libs, tmp_path / "build")


    one_shape = {"tiny": {"name": "tiny", "gemm_shapes": ["128x512"]}}
    ours = bench.run_gemm("native", one_shape, ["TQ2_0"], [1, 3], [1], 2)
    theirs = bench.run_gemm("native", one_shape, ["tq2_0"], [1, 3], [1], 2, program, label=lambda t: f"peer:{t}")
    key = lambda r: (r["M"], r["K"], r["N"], r["threads"])  # noqa: E731
    assert [key(r) for r in theirs] == [key(r) for r in ours if "type" in r] == [(128, 512, 1, 1), (128, 512, 3, 1)]
    assert {r["type"] for r in theirs} == {"peer:tq2_0"}
    assert [r["bytes_per_copy"] for r in theirs] == [r["bytes_per_copy"] for r in ours if "type" in r]
    assert all(r["gops"] > 0 and r["gops_min"] <= r["gops"] <= r["gops_max"] for r in theirs)
