"""`veclut bench`: GEMM (bench-veclut) and end-to-end (llama-bench, llama-batched-bench) speed
of the new types against upstream's, measured in one run on one machine; medians of repeated
runs with min and max; JSON, Markdown and PNG reports; comparison with a saved baseline."""

import json
import os
import statistics
import subprocess
import time
from pathlib import Path

from . import atomic, cpuinfo, ui
from .config import UPSTREAM_KERNELS, load_upstream, load_yaml
from .cpus import usable_cpus
from .errors import VeclutError
from .paths import configs_dir, profile_build_dir, project_root
from .synth import ensure_base, ensure_type

# upstream types veclut also runs: end to end each is measured on upstream's kernels ("Q1_0") and
# on veclut's ("Q1_0+"), from the same file
ACCELERATED_UPSTREAM = ("TQ2_0", "TQ1_0", "Q2_0", "Q1_0")


def suites() -> dict[str, dict]:
    files = sorted((configs_dir() / "bench").glob("*.yaml"))
    return {p.stem: load_yaml(p) for p in files if not p.stem.startswith("_")}


def defaults() -> dict:
    return load_yaml(configs_dir() / "bench" / "_defaults.yaml")


def pick_suites(names: list[str] | None, default: list[str]) -> dict[str, dict]:
    known = suites()
    chosen = names or default
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise VeclutError(f"unknown benchmark suite {unknown[0]}; known suites: {', '.join(known)}")
    return {n: known[n] for n in chosen}


def limit_shapes(chosen: dict[str, dict], shapes: list[str] | None) -> dict[str, dict]:
    """Only the suites' GEMM shapes named in `shapes` (all when None); suites left empty are dropped."""
    if not shapes:
        return chosen
    known = {s for suite in chosen.values() for s in suite.get("gemm_shapes", [])}
    unknown = [s for s in shapes if s not in known]
    if unknown:
        raise VeclutError(f"no chosen suite has the GEMM shape {unknown[0]}; shapes: {', '.join(sorted(known))}")
    kept = {name: {**suite, "gemm_shapes": [s for s in suite["gemm_shapes"] if s in shapes]} for name, suite in chosen.items()}
    return {name: suite for name, suite in kept.items() if suite["gemm_shapes"]}


def check_types(types: list[str], allowed: list[str]) -> None:
    unknown = [t for t in types if t not in allowed]
    if unknown:
        raise VeclutError(f"unknown type {unknown[0]} for this benchmark; choose from {', '.join(allowed)}")


def _bin(profile: str, program: str) -> Path:
    path = profile_build_dir(profile) / "bin" / program
    if not path.exists():
        raise VeclutError(f"{path} is missing; run `veclut build --profile {profile}` first")
    return path


def _git_commit() -> str:
    result = subprocess.run(["git", "-C", str(project_root()), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def machine(profile: str) -> dict:
    info = subprocess.run([str(_bin(profile, "veclut-info"))], capture_output=True, text=True).stdout
    field = lambda key: next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith(key + ":")), "?")  # noqa: E731
    kernels, i1_layout = field("active_kernel_set"), field("i1_layout")
    return {"cpu": cpuinfo.model_name(), **{f"cpu_{k}": v for k, v in cpuinfo.identity().items()},
            "cores": os.cpu_count(), "usable_cpus": usable_cpus(), "features": [k for k, v in cpuinfo.features().items() if v],
            "flags": sorted(cpuinfo.flags()), "profile": profile, "kernels": kernels, "i1_layout": i1_layout, "veclut_commit": _git_commit(),
            "llama_cpp_commit": load_upstream().llama_cpp_commit[:10], "date": time.strftime("%Y-%m-%d %H:%M")}


def run_gemm(profile: str, chosen: dict[str, dict], types: list[str], tokens: list[int], threads: list[int], reps: int,
             program: Path | None = None, label=lambda name: name) -> list[dict]:
    """bench-veclut's rows for every chosen suite (or another program's that measures the same way,
    bench-peer-gemm, whose type names `label` turns into report labels)."""
    program = program or _bin(profile, "bench-veclut")
    rows = []
    for name, suite in chosen.items():
        cmd = [str(program), "--shapes", ",".join(suite["gemm_shapes"]), "--tokens", ",".join(map(str, tokens)),
               "--threads", ",".join(map(str, threads)), "--types", ",".join(types), "--reps", str(reps)]
        with ui.status(f"GEMM {suite['name']}: {len(suite['gemm_shapes'])} shapes x {len(tokens)} N x {len(threads)} threads"):
            result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise VeclutError(f"{program.name} failed on suite {name} ({_why(result)})")
        for line in result.stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                if "type" in row:
                    row["type"] = label(row["type"])
                rows.append({**row, "suite": name})
    return rows


def _median_min_max(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_e2e(profile: str, chosen: dict[str, dict], types: list[str], cfg: dict, seed: int,
            profiles: list[dict] | None = None) -> list[dict]:
    """llama-bench and llama-batched-bench rows of every type; with a `profiles` list, also where
    each type's prefill and decode spend their time (bench_profile), appended to it."""
    bench, batched, bin_dir = _bin(profile, "llama-bench"), _bin(profile, "llama-batched-bench"), profile_build_dir(profile) / "bin"
    rows = []
    for name, suite in chosen.items():
        if "model" not in suite:
            raise VeclutError(f"suite {name} has no model shape for end-to-end runs; choose a suite with a `model:` section")
        base = ensure_base(name, suite["model"], seed)
        for type_name in types:
            model = ensure_type(bin_dir, base, type_name, cfg["token_embedding_type"], cfg["output_type"])
            # upstream types run by upstream's kernels; the same file through veclut is "<type>+"
            variants = [(type_name, UPSTREAM_KERNELS)] if type_name in ACCELERATED_UPSTREAM else [(type_name, {})]
            if type_name in ACCELERATED_UPSTREAM:
                variants.append((type_name + "+", {}))
            for label, env in variants:
                rows += llama_bench(bench, model, name, label, env, cfg)
                rows += batched_bench(batched, model, name, label, env, cfg, tuple(cfg.get("batched_bench_args", ())))
                if profiles is not None:
                    profiles += profile_phases(bench, model, name, label, env, cfg)
    return rows


def profile_phases(program: Path, model: Path, suite: str, label: str, env: dict, cfg: dict, extra: tuple = (),
                   cwd: Path | None = None) -> list[dict]:
    """One profile row per phase (prefill, decode); a run perf cannot profile gives a row saying why."""
    from .bench_profile import llama_bench_phases, profile

    out = []
    for test, cmd in llama_bench_phases(program, model, cfg, extra).items():
        row = {"suite": suite, "type": label, "test": test, "threads": cfg["threads"]}
        try:
            out.append({**row, "shares": profile(cmd, env, cwd, f"{label} {test}")})
        except VeclutError as err:
            out.append({**row, "error": str(err)})
    return out


# words marking the line that says why a program failed, most telling first (a crash ends with
# the debugger's backtrace, whose last line says nothing)
FAILURE_MARKERS = ("GGML_ASSERT", "error", "failed")


def _why(result) -> str:
    """The line of a failed program's output that says why it failed."""
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines() or ["no output"]
    for marker in FAILURE_MARKERS:
        hit = next((line for line in reversed(lines) if marker.lower() in line.lower()), None)
        if hit:
            return hit.strip()
    return lines[-1].strip()


def _llama_bench_json(text: str, program: Path) -> list[dict]:
    """llama-bench's `-o json` array (lines printed before it, as some builds do, are skipped)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("[")), len(lines))
    try:
        return json.loads("\n".join(lines[start:]))
    except json.JSONDecodeError:
        raise VeclutError(f"{program} printed no JSON array for `-o json`; run it by hand to see its output") from None


def llama_bench(program: Path, model: Path, suite: str, label: str, env: dict, cfg: dict, extra: tuple = (),
                cwd: Path | None = None) -> list[dict]:
    cmd = [str(program), "-m", str(model), "-p", str(cfg["prompt"]), "-n", str(cfg["gen"]), "-t", str(cfg["threads"]),
           "-r", str(cfg["reps"]), "-o", "json", *extra]
    with ui.status(f"llama-bench {suite} {label}"):
        result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, cwd=cwd)
    if result.returncode != 0:
        raise VeclutError(f"llama-bench failed on {model.name} ({_why(result)})")
    rows = []
    for r in _llama_bench_json(result.stdout, program):
        test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        rows.append({"suite": suite, "type": label, "test": test, "threads": cfg["threads"], "unit": "t/s",
                     "model": str(model), **_median_min_max(r["samples_ts"])})
    return rows


def read_bandwidth(profile: str, threads: int, reps: int = 5) -> float:
    """The machine's read bandwidth in GB/s with `threads` threads (bench-veclut --bandwidth)."""
    cmd = [str(_bin(profile, "bench-veclut")), "--bandwidth", "--threads", str(threads), "--reps", str(reps)]
    with ui.status(f"read bandwidth, {threads} threads"):
        result = subprocess.run(cmd, capture_output=True, text=True)
    lines = [json.loads(l) for l in result.stdout.splitlines() if l.startswith("{")]
    if result.returncode != 0 or not lines:
        raise VeclutError(f"bench-veclut --bandwidth failed ({_why(result)}); rebuild with `veclut build --profile {profile}`")
    return lines[0]["read_gbs"]


def embedding_bytes(m: dict, type_name: str) -> int:
    """Bytes of a suite model's token embedding in `type_name` (a token reads one row of it)."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name.upper()]]
    return m["vocab"] * m["hidden"] // block * size


def add_roofline(rows: list[dict], chosen: dict[str, dict], cfg: dict, read_gbs: float) -> None:
    """Generation rows get the bandwidth they use and their share of the roofline: the weights one
    token reads (the model file less its token embedding) times tokens/s, over the read bandwidth
    measured with the same thread count."""
    for r in rows:
        if r["test"].startswith("tg") and "model" in r and r["suite"] in chosen:
            per_token = Path(r["model"]).stat().st_size - embedding_bytes(chosen[r["suite"]]["model"],
                                                                          cfg["token_embedding_type"])
            r["read_gbs"] = per_token * r["median"] / 1e9
            r["roofline"] = r["read_gbs"] / read_gbs


def _jsonl_speeds(text: str) -> list[tuple[int, float]]:
    """(parallel sequences, generation t/s) from llama-batched-bench's `--output-format jsonl`."""
    return [(r["pl"], r["speed_tg"]) for r in (json.loads(line) for line in text.splitlines()
                                                if line.startswith("{") and '"speed_tg"' in line)]


def _table_speeds(text: str) -> list[tuple[int, float]]:
    """The same from llama-batched-bench's Markdown table (columns found by their headers B, S_TG t/s)."""
    header, out = None, []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "B" in cells and "S_TG t/s" in cells:
            header = cells
        elif header and len(cells) == len(header) and cells[0].isdigit():
            row = dict(zip(header, cells))
            out.append((int(row["B"]), float(row["S_TG t/s"])))
    return out


# output format of llama-batched-bench -> (arguments that select it, parser)
BATCHED_OUTPUTS = {"jsonl": (("--output-format", "jsonl"), _jsonl_speeds), "table": ((), _table_speeds)}


def batched_bench(program: Path, model: Path, suite: str, label: str, env: dict, cfg: dict, extra: tuple = (),
                  output: str = "jsonl", cwd: Path | None = None) -> list[dict]:
    npl = cfg["parallel"]
    ctx = max(npl) * (cfg["parallel_prompt"] + cfg["parallel_gen"]) + 64
    select, parse = BATCHED_OUTPUTS[output]
    cmd = [str(program), "-m", str(model), "-c", str(ctx), "-b", "2048", "-ub", "512", "-npp", str(cfg["parallel_prompt"]),
           "-ntg", str(cfg["parallel_gen"]), "-npl", ",".join(map(str, npl)), "-t", str(cfg["threads"]), *select, *extra]
    samples: dict[int, list[float]] = {n: [] for n in npl}
    for _ in range(cfg["reps"]):
        with ui.status(f"llama-batched-bench {suite} {label}"):
            result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, cwd=cwd)
        if result.returncode != 0:
            raise VeclutError(f"llama-batched-bench failed on {model.name} ({_why(result)})")
        for pl, speed in parse(result.stdout + "\n" + result.stderr):
            samples.setdefault(pl, []).append(speed)
    if not any(samples.values()):
        raise VeclutError(f"llama-batched-bench printed no results for {model.name}; run it by hand to see its output")
    return [{"suite": suite, "type": label, "test": f"parallel{n} tg", "threads": cfg["threads"], "unit": "t/s",
             **_median_min_max(values)} for n, values in samples.items() if values]


def ratios(rows: list[dict], baselines: dict[str, str | list[str]]) -> list[dict]:
    """Speed-up of each type over each of its baselines measured in the same run (e2e rows): the
    upstream type it replaces, or a peer's types."""
    index = {(r["suite"], r["type"], r["test"]): r for r in rows}
    out = []
    for (suite, type_name, test), r in index.items():
        wanted = baselines.get(type_name, [])
        for baseline in [wanted] if isinstance(wanted, str) else wanted:
            base = index.get((suite, baseline, test))
            if base:
                out.append({"suite": suite, "type": type_name, "baseline": base["type"], "test": test,
                            "speedup": r["median"] / base["median"]})
    return out


def compare_with(old_path: Path, report: dict) -> list[str]:
    """Slow-downs beyond the measured noise (the wider min-max spread of old and new, at least 5%)."""
    try:
        old = json.loads(old_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise VeclutError(f"cannot read the baseline {old_path} ({err}); give a report.json written by veclut bench") from None

    def key(r):
        return (r.get("suite"), r.get("type"), r.get("test") or (r.get("M"), r.get("K"), r.get("N")), r.get("threads"))

    def speed(r):
        return (r["median"], r["min"], r["max"]) if "median" in r else (r["gops"], r["gops_min"], r["gops_max"])

    previous = {key(r): r for r in old.get("e2e", []) + [g for g in old.get("gemm", []) if "type" in g]}
    flags = []
    for r in report.get("e2e", []) + [g for g in report.get("gemm", []) if "type" in g]:
        before = previous.get(key(r))
        if not before:
            continue
        (new, new_lo, new_hi), (was, was_lo, was_hi) = speed(r), speed(before)
        noise = max((new_hi - new_lo) / new, (was_hi - was_lo) / was, 0.05)
        if new < was * (1 - noise):
            flags.append(f"{' '.join(str(k) for k in key(r) if k is not None)}: {was:.1f} -> {new:.1f} "
                         f"({100 * (new / was - 1):+.0f}%, noise {100 * noise:.0f}%)")
    return flags


def write_report(out_dir: Path, report: dict) -> None:
    from .bench_report import markdown, plots

    atomic.make_dirs(out_dir, f"create {out_dir}")
    atomic.write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n", "write report.json")
    images = plots(out_dir, report)
    atomic.write_text(out_dir / "report.md", markdown(report, images), "write report.md")
    ui.info(f"wrote {out_dir / 'report.md'}, report.json and {len(images)} plots")
