"""`veclut bench e2e --peer NAME`: the same synthetic models, made into the peer's own types by the
peer's own llama-quantize, measured by the peer's llama-bench and llama-batched-bench with the same
settings as veclut's rows. A peer that cannot be fetched, built or run is reported as missing, with
the reason, beside veclut's rows; it never stops the benchmark."""

from pathlib import Path

from . import atomic, ui
from .bench import batched_bench, llama_bench, profile_phases, ratios, run_gemm
from .config import Peer
from .errors import VeclutError
from .peer import ensure_built, gemm_program, peer_root
from .synth import ensure_base, ensure_type


def peer_types(peer: Peer, veclut_types: list[str]) -> list[str]:
    """The peer's types compared with the chosen veclut types (all of them if none is compared)."""
    wanted = {p for t in veclut_types for p in peer.compare.get(t, ())}
    return [t for t in peer.types if t in wanted] or list(peer.types)


def run_dir(peer: Peer) -> Path:
    """Where the peer's programs run, so files they write (logs) land beside its build, not in ours."""
    path = peer_root(peer) / "run"
    atomic.make_dirs(path, f"create the working directory of {peer.name}")
    return path


def row_label(peer: Peer, type_name: str) -> str:
    return f"{peer.label}:{type_name}"


def describe(peer: Peer) -> dict:
    """What the report says about the peer whether or not it could be measured."""
    return {"name": peer.name, "label": peer.label, "package": peer.pin.package, "version": peer.pin.version,
            "sha256": peer.pin.sha256, "commit": peer.pin.llama_cpp_commit, "config": peer.pin.config,
            "build_dir": str(peer_root(peer) / "build"), "cmake": peer.cmake,
            "llama_bench_args": list(peer.llama_bench_args), "batched_bench_args": list(peer.batched_bench_args)}


def _measure_type(peer: Peer, bin_dir: Path, base: Path, suite: str, type_name: str, cfg: dict,
                  profiles: list[dict] | None) -> list[dict]:
    spell = peer.tensor_type_names
    model = ensure_type(bin_dir, base, type_name, spell.get(cfg["token_embedding_type"], cfg["token_embedding_type"]),
                        spell.get(cfg["output_type"], cfg["output_type"]), runtime=peer.label)
    label = row_label(peer, type_name)
    work = run_dir(peer)  # ik's programs write llama.log into their working directory
    rows = llama_bench(bin_dir / "llama-bench", model, suite, label, {}, cfg, peer.llama_bench_args, cwd=work)
    rows += batched_bench(bin_dir / "llama-batched-bench", model, suite, label, {}, cfg, peer.batched_bench_args,
                          peer.batched_bench_output, cwd=work)
    if profiles is not None:
        profiles += profile_phases(bin_dir / "llama-bench", model, suite, label, {}, cfg, peer.llama_bench_args, cwd=work)
    return rows


def run(peer: Peer, chosen: dict[str, dict], veclut_types: list[str], cfg: dict, seed: int,
        build=ensure_built, profiles: list[dict] | None = None) -> tuple[list[dict], dict]:
    """(e2e rows labelled '<label>:<type>', the report's entry for the peer). Every failure of the
    peer becomes a reason in that entry: the whole peer (fetch, build) or one type (quantize, run)."""
    info = describe(peer)
    try:
        bin_dir = build(peer)
    except (VeclutError, OSError) as err:
        ui.info(f"peer {peer.name} will be reported missing: {err}")
        return [], {**info, "status": "missing", "reason": str(err)}
    rows, failed = [], {}
    for name, suite in chosen.items():
        base = ensure_base(name, suite["model"], seed)
        for type_name in peer_types(peer, veclut_types):
            try:
                rows += _measure_type(peer, bin_dir, base, name, type_name, cfg, profiles)
            except (VeclutError, OSError) as err:  # OSError: a program of the peer that cannot be started
                ui.info(f"{row_label(peer, type_name)} on {name} will be reported missing: {err}")
                failed[f"{name} {row_label(peer, type_name)}"] = str(err)
    return rows, _entry(info, rows, failed)


def _entry(info: dict, rows: list[dict], failed: dict) -> dict:
    """The report's entry for a peer part: measured if any row came back, else missing with the reasons."""
    if not rows:
        return {**info, "status": "missing", "reason": "; ".join(failed.values()) or "no type was measured",
                "failed": failed}
    return {**info, "status": "measured", "failed": failed}


def peer_ratios(rows: list[dict], peer: Peer) -> list[dict]:
    """veclut / peer for every compared pair measured in the same run (I2_V / ik:IQ2_BN_R4, ...)."""
    return ratios(rows, {t: [row_label(peer, p) for p in peers] for t, peers in peer.compare.items()})


def run_gemm_rows(peer: Peer, chosen: dict[str, dict], veclut_types: list[str], tokens: list[int], threads: list[int],
                  reps: int, build=gemm_program) -> tuple[list[dict], dict]:
    """(GEMM rows labelled '<label>:<type>', the report's entry for the peer): bench-veclut's
    measurement (same weights, rotation, timing) on the peer's kernels, by bench-peer-gemm."""
    info = describe(peer)
    try:
        program = build(peer)
    except (VeclutError, OSError) as err:
        ui.info(f"peer {peer.name} GEMM will be reported missing: {err}")
        return [], {**info, "status": "missing", "reason": str(err)}
    rows, failed = [], {}
    for name, suite in chosen.items():
        try:
            rows += run_gemm("", {name: suite}, peer_types(peer, veclut_types), tokens, threads, reps, program,
                             label=lambda t: row_label(peer, t))
        except (VeclutError, OSError) as err:
            ui.info(f"{peer.name} GEMM on {name} will be reported missing: {err}")
            failed[f"{name} GEMM"] = str(err)
    return rows, _entry(info, rows, failed)


def gemm_ratios(rows: list[dict], peer: Peer) -> list[dict]:
    """Ratio lines 'I2_V/ik:IQ2_BN_R4' (veclut time over the peer's, as bench-veclut writes its own)
    for every configuration both measured in the same run."""
    speed = {(r["suite"], r["type"], r["M"], r["K"], r["N"], r["threads"]): r["gops"] for r in rows if "type" in r}
    out = []
    for (suite, type_name, M, K, N, threads), gops in speed.items():
        for other in peer.compare.get(type_name, ()):
            label = row_label(peer, other)
            base = speed.get((suite, label, M, K, N, threads))
            if base:
                out.append({"ratio": f"{type_name}/{label}", "suite": suite, "M": M, "K": K, "N": N, "threads": threads,
                            "gops": gops, "baseline_gops": base, "speedup": gops / base})
    return out


def merge_status(parts: dict[str, dict]) -> dict:
    """One report entry for a peer measured in several parts ({"GEMM": entry, "end to end": entry}):
    measured if any part was, with the reasons of the parts that were not among its failures."""
    entries = list(parts.values())
    failed = {k: v for e in entries for k, v in (e.get("failed") or {}).items()}
    missing = {part: e["reason"] for part, e in parts.items() if e["status"] != "measured"}
    if len(missing) == len(parts):
        return {**entries[0], "reason": "; ".join(missing.values()), "failed": failed}
    return {**entries[0], "status": "measured", "failed": {**failed, **missing}}
