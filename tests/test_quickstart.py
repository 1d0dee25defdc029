"""`veclut quickstart`'s reuse rule and speed table (the full run is the README's first command;
it takes minutes, so CI runs its parts: build, convert, check and bench have their own tests)."""

import json

from veclut import quickstart


def test_state_is_reused_only_for_the_same_build(tmp_path):
    path = tmp_path / "state.json"
    marks = {"veclut": "x", "files": {"libggml-cpu.so": [1, 2]}}
    path.write_text(json.dumps({"fingerprint": marks, "check": "passed"}))
    assert quickstart._load_state(path, marks, rerun=False)["check"] == "passed"
    rebuilt = {"veclut": "x", "files": {"libggml-cpu.so": [1, 3]}}
    assert quickstart._load_state(path, rebuilt, rerun=False) == {"fingerprint": rebuilt}
    assert quickstart._load_state(path, marks, rerun=True) == {"fingerprint": marks}
    path.write_text("{not json")
    assert quickstart._load_state(path, marks, rerun=False) == {"fingerprint": marks}


def test_gemm_table_shows_speed_ups_against_upstream():
    rows = [{"type": t, "N": n, "gops": g} for t, n, g in
            [("I2_V", 1, 10.0), ("TQ2_0", 1, 5.0), ("I1_V", 32, 9.0), ("TQ1_0", 32, 3.0)]]
    rows.append({"ratio": "I2_V/TQ2_0", "N": 1, "speedup": 2.0})  # bench-veclut's own ratio lines are skipped
    table = quickstart.gemm_table(rows, threads=2)
    cells = {n: [c._cells[i] for c in table.columns] for i, n in enumerate(quickstart.TOKENS)}
    assert cells[1] == ["1", "10.0", "5.0", "2.00x", "-", "-", "-"]
    assert cells[32] == ["32", "-", "-", "-", "9.0", "3.0", "3.00x"]
