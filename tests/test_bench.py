"""`veclut bench`: configs, report building, the baseline comparison, bad input, and a tiny
end-to-end run of the whole harness (speed itself is never asserted)."""

import json
import subprocess

import pytest

from conftest import run_veclut
from veclut import bench
from veclut.bench_report import markdown
from veclut.errors import VeclutError


def test_shipped_suites_have_real_model_shapes():
    suites = bench.suites()
    assert {"bitnet-large", "bitnet-2b-4t", "llama3-8b-1.58", "falcon3-1b-1.58"} <= set(suites)
    assert "14336x4096" in suites["llama3-8b-1.58"]["gemm_shapes"]
    large = suites["bitnet-large"]["model"]
    assert (large["hidden"], large["ffn"], large["layers"], large["vocab"]) == (1536, 4096, 24, 32000)
    d = bench.defaults()
    assert d["gemm"]["tokens"] == [1, 8, 32, 128, 256, 512]
    # a default GEMM run measures the real-model suites, not the harness's smoke suite
    assert set(d["gemm"]["suites"]) == {"bitnet-large", "bitnet-2b-4t", "llama3-8b-1.58", "falcon3-1b-1.58"}
    assert set(bench.pick_suites(None, d["gemm"]["suites"])) == set(d["gemm"]["suites"])
    assert d["baselines"]["I2_V"] == "TQ2_0"


def test_unknown_suite_and_type_are_one_sentence():
    with pytest.raises(VeclutError, match="unknown benchmark suite nope; known suites:"):
        bench.pick_suites(["nope"], [])
    with pytest.raises(VeclutError, match="unknown type Q9_9"):
        bench.check_types(["Q9_9"], ["I2_V"])


def test_a_run_can_be_limited_to_shapes():
    chosen = bench.pick_suites(["llama3-8b-1.58", "bitnet-2b-4t"], [])
    kept = bench.limit_shapes(chosen, ["4096x4096", "14336x4096"])
    assert kept == {"llama3-8b-1.58": {**chosen["llama3-8b-1.58"], "gemm_shapes": ["4096x4096", "14336x4096"]}}
    assert bench.limit_shapes(chosen, None) == chosen
    with pytest.raises(VeclutError, match="no chosen suite has the GEMM shape 5x5"):
        bench.limit_shapes(chosen, ["5x5"])


def _row(type_name, median, lo, hi, test="pp512"):
    return {"suite": "s", "type": type_name, "test": test, "threads": 2, "unit": "t/s", "median": median, "min": lo, "max": hi}


def test_ratios_use_the_baseline_of_the_same_run():
    rows = [_row("I2_V", 400, 390, 410), _row("TQ2_0", 100, 99, 101), _row("I2_V", 120, 118, 121, "tg128"),
            _row("TQ2_0", 60, 59, 61, "tg128")]
    got = {(r["type"], r["test"]): round(r["speedup"], 3) for r in bench.ratios(rows, {"I2_V": "TQ2_0"})}
    assert got == {("I2_V", "pp512"): 4.0, ("I2_V", "tg128"): 2.0}


def test_compare_flags_only_slowdowns_beyond_noise(tmp_path):
    old = {"e2e": [_row("I2_V", 400, 390, 410), _row("I1_V", 300, 240, 330)], "gemm": []}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    new = {"e2e": [_row("I2_V", 300, 295, 305), _row("I1_V", 280, 270, 290)], "gemm": []}
    flags = bench.compare_with(path, new)
    assert len(flags) == 1 and "I2_V" in flags[0] and "-25%" in flags[0], flags
    with pytest.raises(VeclutError, match="cannot read the baseline"):
        bench.compare_with(tmp_path / "missing.json", new)


def test_markdown_has_machine_tables_and_ratios():
    report = {"machine": {"cpu": "CPU X", "cores": 2, "features": ["AVX2"], "profile": "native", "kernels": "avx2",
                          "veclut_commit": "abc", "llama_cpp_commit": "0c1e", "date": "today"},
              "command": "veclut bench all",
              "gemm": [{"suite": "s", "type": "I2_V", "M": 8, "K": 256, "N": 1, "threads": 1, "gops": 10, "gops_min": 9, "gops_max": 11},
                       {"suite": "s", "type": "TQ2_0", "M": 8, "K": 256, "N": 1, "threads": 1, "gops": 5, "gops_min": 5, "gops_max": 6},
                       {"suite": "s", "ratio": "I2_V/TQ2_0", "M": 8, "K": 256, "N": 1, "threads": 1, "speedup": 2.0}],
              "e2e": [_row("I2_V", 400, 390, 410)], "e2e_ratios": []}
    text = markdown(report, ["gemm-s.png"])
    assert "CPU X" in text and "veclut bench all" in text
    assert "| 1 | 10 [9–11] | 5 [5–6] | **2.00** |" in text
    assert "400.0 [390.0–410.0]" in text and "![gemm-s.png](gemm-s.png)" in text


@pytest.mark.build
def test_generation_rows_get_their_share_of_the_bandwidth_roofline(native_build, tmp_path):
    # native_build: gguf (the block sizes) is the patched tree's, installed by the build
    m = {"vocab": 512, "hidden": 256}  # a Q4_K embedding of 512 x 256: 512 blocks of 144 bytes
    assert bench.embedding_bytes(m, "q4_k") == 512 * 144
    model = tmp_path / "m.gguf"
    model.write_bytes(b"\0" * (512 * 144 + 10_000_000))  # 10 MB of weights a token reads
    rows = [{**_row("I2_V", 500, 490, 510), "test": "tg128", "model": str(model)},
            {**_row("I2_V", 900, 890, 910), "test": "pp512", "model": str(model)}]
    bench.add_roofline(rows, {"s": {"model": m}}, {"token_embedding_type": "q4_k"}, read_gbs=10.0)
    assert rows[0]["read_gbs"] == pytest.approx(5.0) and rows[0]["roofline"] == pytest.approx(0.5)
    assert "roofline" not in rows[1]  # prefill is not bandwidth-bound
    report = {"machine": {"cpu": "CPU X", "cores": 2, "features": [], "profile": "native", "kernels": "avx2",
                          "veclut_commit": "abc", "llama_cpp_commit": "0c1e", "date": "today",
                          "read_gbs": {"threads": 2, "gbs": 10.0}},
              "command": "veclut bench e2e", "e2e": rows, "e2e_ratios": []}
    text = markdown(report, [])
    assert "read bandwidth 10.0 GB/s with 2 threads" in text and "I2_V tg128 50 % (5.0 GB/s)" in text


@pytest.mark.build
def test_tiny_run_of_the_whole_harness(native_build, tmp_path, monkeypatch):
    monkeypatch.setenv("VECLUT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "report"
    result = run_veclut("bench", "all", "--suite", "smoke", "--type", "I2_V", "--type", "TQ2_0", "--tokens", "1,8",
                        "--threads", "1", "--reps", "2", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    for key in ("cpu", "cores", "features", "profile", "kernels", "veclut_commit", "llama_cpp_commit"):
        assert report["machine"][key] not in (None, "", "?")
    gemm = [r for r in report["gemm"] if "type" in r]
    assert {r["type"] for r in gemm} == {"I2_V", "TQ2_0"} and all(r["gops"] > 0 for r in gemm)
    assert all(r["gops_min"] <= r["gops"] <= r["gops_max"] for r in gemm)
    assert any("ratio" in r and r["speedup"] > 0 for r in report["gemm"])
    tests = {(r["type"], r["test"]) for r in report["e2e"]}
    assert {("I2_V", "pp512"), ("I2_V", "tg128"), ("TQ2_0", "pp512"), ("TQ2_0+", "tg128")} <= tests
    assert any(t.startswith("parallel16") for _, t in tests)
    assert all(r["min"] <= r["median"] <= r["max"] for r in report["e2e"])
    assert report["e2e_ratios"] and (out / "report.md").read_text().startswith("# veclut benchmark")
    assert report["batched_bench_args"] == ["-fa", "on"] and "llama-batched-bench runs with `-fa on`" in (out / "report.md").read_text()
    assert sorted(p.name for p in out.glob("*.png"))
    # the synthetic models are cached: a second run generates nothing new
    models = sorted(p.name for p in (tmp_path / "cache/models").rglob("*.gguf"))
    assert "base-f16.gguf" in models


@pytest.mark.build
@pytest.mark.parametrize("min_mib,reps,seconds", [(0, 7, 1e-6), (4, 3, 0.01)])
def test_bench_program_rotates_few_copies_over_many_repetitions(native_build, min_mib, reps, seconds):
    # --min-mib 0 leaves two weight copies for seven repetitions of one copy each (1e-6 s):
    # the windows are reused in turn
    program = native_build.bin_dir / "bench-veclut"
    result = subprocess.run([str(program), "--shapes", "256x512", "--tokens", "1,40", "--threads", "1", "--types",
                             "I2_V,TQ2_0", "--reps", str(reps), "--min-mib", str(min_mib), "--min-seconds", str(seconds)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith('{"type"')]
    assert len(rows) == 4 and all(r["ms_min"] <= r["ms_median"] <= r["ms_max"] and r["gops"] > 0 for r in rows)
    assert all(r["copies"] >= 2 for r in rows)


def test_missing_build_is_one_sentence(tmp_path):
    result = run_veclut("bench", "gemm", "--suite", "smoke", env={"VECLUT_BUILD_DIR": str(tmp_path)})
    assert result.returncode == 1 and "is missing; run `veclut build --profile native` first" in result.stderr


def test_e2e_takes_one_thread_count_per_run(native_build, tmp_path):
    result = run_veclut("bench", "e2e", "--suite", "smoke", "--threads", "1,2", "--out", str(tmp_path / "r"))
    assert result.returncode == 1
    assert "one thread count per report" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_e2e_passes_the_configured_batched_bench_arguments(tmp_path, monkeypatch):
    """llama-batched-bench gets the e2e config's batched_bench_args (veclut with its flash attention)."""
    seen = []
    monkeypatch.setattr(bench, "_bin", lambda profile, program: tmp_path / program)
    monkeypatch.setattr(bench, "ensure_base", lambda name, model, seed: tmp_path / "base.gguf")
    monkeypatch.setattr(bench, "ensure_type", lambda *a, **k: tmp_path / "m.gguf")
    monkeypatch.setattr(bench, "llama_bench", lambda *a, **k: [])
    monkeypatch.setattr(bench, "batched_bench", lambda program, model, suite, label, env, cfg, extra=(), *a, **k:
                        seen.append((label, extra)) or [])
    cfg = {**bench.defaults()["e2e"], "threads": 1}
    bench.run_e2e("native", {"s": {"name": "s", "model": {"hidden": 256}}}, ["I2_V", "TQ2_0"], cfg, 1)
    assert seen == [("I2_V", ("-fa", "on")), ("TQ2_0", ("-fa", "on")), ("TQ2_0+", ("-fa", "on"))]


def test_e2e_runs_every_accelerated_upstream_type_both_ways(tmp_path, monkeypatch):
    """An upstream type veclut also runs (Q1_0, Q2_0, TQ1_0, TQ2_0) is measured on upstream's
    kernels under its own name and on veclut's as X+; a new type once, on veclut's."""
    seen = []
    monkeypatch.setattr(bench, "_bin", lambda profile, program: tmp_path / program)
    monkeypatch.setattr(bench, "ensure_base", lambda name, model, seed: tmp_path / "base.gguf")
    monkeypatch.setattr(bench, "ensure_type", lambda *a, **k: tmp_path / "m.gguf")
    monkeypatch.setattr(bench, "batched_bench", lambda *a, **k: [])
    monkeypatch.setattr(bench, "llama_bench", lambda program, model, suite, label, env, cfg, *a, **k:
                        seen.append((label, env)) or [])
    cfg = {**bench.defaults()["e2e"], "threads": 1}
    bench.run_e2e("native", {"s": {"name": "s", "model": {"hidden": 256}}}, ["Q1_0", "Q2_0", "I2_V"], cfg, 1)
    assert seen == [("Q1_0", bench.UPSTREAM_KERNELS), ("Q1_0+", {}), ("Q2_0", bench.UPSTREAM_KERNELS),
                    ("Q2_0+", {}), ("I2_V", {})]
