"""The speed targets (configs/bench/_defaults.yaml `targets:`) checked against a benchmark report:
for each, every measured point (suite and test, or suite, shape, N and threads), whether all of
them reach the bound, and the worst one. A target the run measured nothing for says so."""


def _label(t: dict) -> str:
    bound = f"≥ {100 * t['at_least']:.0f} % of the roofline" if t["part"] == "roofline" else f"≥ {t['at_least']:g}×"
    against = "" if t["part"] == "roofline" else (" the fastest of " if t.get("fastest") else " ") + " / ".join(t["vs"])
    where = ", ".join(t.get("tests", []))
    if t["part"] == "gemm":
        lo, hi = t.get("n_min"), t.get("n_max")
        where = f"GEMM N = {lo}" if lo is not None and lo == hi else \
            f"GEMM N ≥ {lo}" if hi is None else f"GEMM N ≤ {hi}" if lo is None else f"GEMM {lo} ≤ N ≤ {hi}"
    return f"{'/'.join(t['type'])} {where}: {bound}{against}"


def _e2e_points(t: dict, rows: list[dict]) -> list[tuple[str, float]]:
    speed = {(r["suite"], r["type"], r["test"]): r["median"] for r in rows}
    points = []
    for (suite, type_name, test), mine in speed.items():
        if type_name not in t["type"] or test not in t["tests"]:
            continue
        others = {v: speed[(suite, v, test)] for v in t["vs"] if (suite, v, test) in speed}
        if not others:
            continue
        pairs = [max(others.items(), key=lambda kv: kv[1])] if t.get("fastest") else list(others.items())
        points += [(f"{suite} {test} {type_name} / {v}", mine / base) for v, base in pairs]
    return points


def _roofline_points(t: dict, rows: list[dict]) -> list[tuple[str, float]]:
    return [(f"{r['suite']} {r['test']} {r['type']}", r["roofline"]) for r in rows
            if r["type"] in t["type"] and r["test"] in t["tests"] and "roofline" in r]


def _gemm_points(t: dict, rows: list[dict]) -> list[tuple[str, float]]:
    lo, hi = t.get("n_min", 0), t.get("n_max", float("inf"))
    speed = {(r["suite"], r["type"], r["M"], r["K"], r["N"], r["threads"]): r["gops"] for r in rows if "type" in r}
    points = []
    for (suite, type_name, M, K, N, threads), mine in speed.items():
        if type_name not in t["type"] or not lo <= N <= hi:
            continue
        for v in t["vs"]:
            base = speed.get((suite, v, M, K, N, threads))
            if base:
                points.append((f"{suite} {M}×{K} N={N} {threads}t {type_name} / {v}", mine / base))
    return points


POINTS = {"e2e": ("e2e", _e2e_points), "roofline": ("e2e", _roofline_points), "gemm": ("gemm", _gemm_points)}


def check(report: dict, targets: list[dict]) -> list[dict]:
    """One entry per target: its label, the number of points, the worst point and whether all hold
    (None when nothing was measured)."""
    out = []
    for t in targets:
        section, points_of = POINTS[t["part"]]
        points = points_of(t, report.get(section, []))
        worst = min(points, key=lambda p: p[1]) if points else None
        out.append({"target": _label(t), "points": len(points),
                    "met": sum(1 for _, v in points if v >= t["at_least"]),
                    "worst": {"where": worst[0], "value": worst[1]} if worst else None,
                    "holds": all(v >= t["at_least"] for _, v in points) if points else None,
                    "part": t["part"]})
    return out


def summary_line(entry: dict) -> str:
    if entry["holds"] is None:
        return f"{entry['target']} — not measured"
    verdict = "holds" if entry["holds"] else "not reached"
    w = entry["worst"]
    value = f"{100 * w['value']:.0f} %" if entry["part"] == "roofline" else f"{w['value']:.2f}×"
    return f"{entry['target']} — {verdict}: {entry['met']} of {entry['points']} points; worst {value} ({w['where']})"
