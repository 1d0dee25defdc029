"""The `veclut` command line: one subcommand per step of the flow (DESIGN.md section 2)."""

import argparse
import sys
from pathlib import Path

from . import __version__, ui
from .errors import VeclutError


def cmd_fetch(args) -> int:
    from .upstream import fetch

    fetch()
    return 0


def cmd_patch(args) -> int:
    from . import patching

    if args.check:
        rows = patching.check_series()
        for name, result in rows:
            ui.out.print(f"{name}: {result}", markup=False)
        failed = [r for r in rows if r[1] != "applies"]
        if failed:
            ui.error(failed[0][1])
            return 1
        ui.info(f"all {len(rows)} patches apply to the pinned tree")
        return 0
    if args.export:
        names = patching.export_series()
        ui.info(f"wrote {len(names)} patches and patches/series from {patching.source_tree()}")
        return 0
    patching.ensure_patched()
    ui.info(f"patched tree ready at {patching.source_tree()}")
    return 0


def cmd_build(args) -> int:
    from .build import build

    result = build(args.profile, jobs=args.jobs, bind=args.bind)
    if result.up_to_date:
        ui.info(f"profile {result.profile.name} is up to date (nothing to rebuild)")
    ui.info(f"programs and libraries: {result.bin_dir}")
    missing = [t for t in result.profile.programs if not (result.bin_dir / t).exists()]
    for program in result.profile.programs:
        mark = "missing" if program in missing else "ok"
        ui.out.print(f"  {result.bin_dir / program}  [{mark}]", markup=False)
    if result.profile.runner:
        ui.info(f"run its programs with: {' '.join(result.profile.runner)} PROGRAM")
    if missing:
        raise VeclutError(f"the build finished but {', '.join(missing)} is missing; check {result.build_dir}/veclut-build.log")
    return 0


def cmd_convert(args) -> int:
    from .convert import run

    run(args.src, args.out, args.type, ternarize=args.ternarize, force=args.force)
    return 0


def cmd_check(args) -> int:
    from .check import run

    return run(args.profile, args.quick, args.model, args.text, args.json, args.junit, fixture=not args.no_fixture)


def cmd_bench(args) -> int:
    import shlex

    from . import bench, bench_peer, bench_profile, bench_targets
    from .config import load_peer

    peers = [load_peer(name) for name in args.peer or []]  # a wrong name fails before anything runs
    if args.breakdown:
        if args.what == "gemm":
            raise VeclutError("--breakdown breaks down end-to-end runs; use it with `veclut bench e2e` or `bench all`")
        bench_profile.require_perf()
    d = bench.defaults()
    peer_parts = {peer.name: {} for peer in peers}  # part measured ("GEMM", "end to end") -> report entry
    report = {"machine": bench.machine(args.profile), "command": "veclut " + shlex.join(sys.argv[1:])}
    threads = report["machine"]["threads"] = {}
    if args.what in ("gemm", "all"):
        g = d["gemm"]
        types = args.type or g["types"]
        bench.check_types(types, ["I2_V", "I1_V", "TQ2_0+", "TQ1_0+", "TQ2_0", "TQ1_0", "Q4_0", "Q2_0",
                                  "Q2_V", "Q2_0+", "Q2_K", "Q1_0", "Q1_0+"])
        chosen = bench.limit_shapes(bench.pick_suites(args.suite, g["suites"]), args.shape)
        threads["gemm"] = args.threads or g["threads"]
        tokens, reps = args.tokens or g["tokens"], args.reps or g["reps"]
        report["gemm"] = bench.run_gemm(args.profile, chosen, types, tokens, threads["gemm"], reps)
        for peer in peers:
            rows, peer_parts[peer.name]["GEMM"] = bench_peer.run_gemm_rows(peer, chosen, types, tokens, threads["gemm"], reps)
            report["gemm"] += rows + bench_peer.gemm_ratios(report["gemm"] + rows, peer)
    if args.what in ("e2e", "all"):
        e = dict(d["e2e"], **({"reps": args.reps} if args.reps else {}))
        if args.what == "e2e" and args.threads:  # end to end runs one thread count per report
            if len(args.threads) != 1:
                raise VeclutError("end-to-end runs take one thread count per report; give `--threads N` "
                                  "and run once per count")
            e["threads"] = args.threads[0]
        types = args.type or e["types"]
        bench.check_types(types, ["I2_V", "I1_V", "TQ2_0", "TQ1_0", "Q4_0", "Q2_0", "Q1_0"])
        chosen = bench.pick_suites(args.suite, e["suites"])
        threads["e2e"] = e["threads"]
        profiles = report["breakdown"] = [] if args.breakdown else None
        report["batched_bench_args"] = list(e.get("batched_bench_args", []))
        report["e2e"] = bench.run_e2e(args.profile, chosen, types, e, args.seed, profiles)
        report["e2e_ratios"] = bench.ratios(report["e2e"], d["baselines"])
        if peers:
            report["peer_ratios"] = []
        for peer in peers:
            rows, peer_parts[peer.name]["end to end"] = bench_peer.run(peer, chosen, types, e, args.seed,
                                                                       profiles=profiles)
            report["e2e"] += rows
            report["peer_ratios"] += bench_peer.peer_ratios(report["e2e"], peer)
        gbs = bench.read_bandwidth(args.profile, e["threads"])
        report["machine"]["read_gbs"] = {"threads": e["threads"], "gbs": gbs}
        bench.add_roofline(report["e2e"], chosen, e, gbs)
    if peers:
        report["peers"] = {name: bench_peer.merge_status(parts) for name, parts in peer_parts.items()}
    report["targets"] = bench_targets.check(report, d.get("targets", []))
    if args.compare:
        report["regressions"] = bench.compare_with(args.compare, report)
    bench.write_report(args.out, report)
    for entry in report["targets"]:
        if entry["holds"] is not None:
            ui.info(f"target {bench_targets.summary_line(entry)}")
    for flag in report.get("regressions", []):
        ui.error(f"slower than {args.compare.name}: {flag}")
    return 1 if report.get("regressions") else 0


def cmd_serve(args) -> int:
    from .serve import Options, api_key, run

    key = api_key(args.api_key, args.api_key_file)
    return run(Options(model=args.model, engine=args.engine, host=args.host, port=args.port, ctx=args.ctx,
                       threads=args.threads, api_key=key, chat_format=args.chat_format, alias=args.alias,
                       parallel=args.parallel, cache_ram=args.cache_ram, verbose=args.verbose))


def cmd_generate(args) -> int:
    from .generate import run

    return run(args.model, args.prompt, args.max_tokens, args.temp, args.seed, args.ctx, args.threads, args.verbose)


def cmd_soak(args) -> int:
    from . import atomic, soak

    report = soak.run(args.model, args.engine, args.clients, args.duration, args.parallel, args.threads, args.ctx,
                      args.seed)
    ui.out.print(soak.table(report))
    if args.json:
        atomic.write_text(args.json, soak.as_json(report) + "\n", "the soak report")
    for problem in report.problems:
        ui.error(problem)
    return 1 if report.problems else 0


def cmd_quickstart(args) -> int:
    from .quickstart import run

    return run(rerun=args.rerun)


def cmd_doctor(args) -> int:
    from .doctor import run

    return run()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="veclut", description="Vector-LUT ternary and 2-bit kernels for llama.cpp.")
    top.add_argument("--version", action="version", version=f"veclut {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fetch", help="download, verify and unpack the pinned llama-cpp-python sdist")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("patch", help="apply patches/series to a clean copy of the pinned tree (build/src)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only report whether every patch applies, and where one fails")
    mode.add_argument("--export", action="store_true", help="write the commits in build/src back to patches/ (refresh)")
    p.set_defaults(func=cmd_patch)

    p = sub.add_parser("build", help="fetch, patch and build a profile; bind gguf and llama_cpp to it")
    p.add_argument("--profile", default="native", help="build profile from configs/build (default: native)")
    p.add_argument("--jobs", "-j", type=int, default=None, help="parallel compile jobs (default: the usable CPUs + 2, as ninja counts)")
    bind = p.add_mutually_exclusive_group()
    bind.add_argument("--bind", dest="bind", action="store_true", default=None, help="bind Python to this profile")
    bind.add_argument("--no-bind", dest="bind", action="store_false", help="leave the Python bindings alone")
    p.set_defaults(func=cmd_build)

    from .convert import TYPES as convert_types

    p = sub.add_parser("convert", help="convert a GGUF (also bitnet.cpp's I2_S, ik_llama.cpp's IQ*_BN) or an HF "
                                       "checkpoint of a ternary model to I2_V / I1_V, or a GGUF's Q2_0 tensors to Q2_V")
    p.add_argument("src", type=Path, help="GGUF file, or HF checkpoint directory (config.json, safetensors, tokenizer)")
    p.add_argument("out", type=Path, help="output GGUF (never overwritten without --force)")
    p.add_argument("--type", required=True, choices=convert_types,
                   help="new type: I2_V / I1_V for ternary tensors (TQ2_0 / TQ1_0: upstream's, for plain llama.cpp), "
                        "Q2_V for Q2_0 tensors")
    p.add_argument("--ternarize", action="store_true",
                   help="ternarise non-ternary linear weights with BitNet's absmean rule instead of refusing them")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("check", help="kernel equivalence matrix and model logits vs upstream; table, JSON, JUnit")
    p.add_argument("--profile", default="native", help="built profile to check (default: native); arm64 is added when built")
    p.add_argument("--quick", action="store_true", help="the quick matrix instead of the full one")
    p.add_argument("--model", type=Path, action="append", default=[], help="also check this GGUF (repeatable)")
    p.add_argument("--text", type=Path, default=None, help="text for the model checks (default: the fixture's held-out text)")
    p.add_argument("--no-fixture", action="store_true", help="skip the project's fixture model")
    p.add_argument("--json", type=Path, default=None, help="write the full report as JSON")
    p.add_argument("--junit", type=Path, default=None, help="write a JUnit XML file for CI systems")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="GEMM and end-to-end speed vs upstream types; JSON, Markdown, PNG")
    p.add_argument("what", choices=["gemm", "e2e", "all"], help="which benchmark")
    p.add_argument("--suite", action="append", help="a suite of configs/bench (repeatable; default: the real-model suites of configs/bench/_defaults.yaml)")
    p.add_argument("--type", action="append", help="limit to this type (repeatable)")
    p.add_argument("--shape", action="append", help="limit GEMM to this MxK shape of the suites (repeatable)")
    p.add_argument("--tokens", type=lambda s: [int(x) for x in s.split(",")], help="GEMM token counts, e.g. 1,32,256")
    p.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")],
                   help="GEMM thread counts, e.g. 1,2; with `e2e`, the one thread count of the run")
    p.add_argument("--reps", type=int, help="repetitions per measurement (medians are reported)")
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic models (default 1)")
    p.add_argument("--profile", default="native", help="built profile to measure (default: native)")
    p.add_argument("--out", type=Path, default=Path("build/bench"), help="report directory (default: build/bench)")
    p.add_argument("--compare", type=Path, help="a previous report.json: flag slow-downs beyond the measured noise")
    p.add_argument("--breakdown", action="store_true",
                   help="also break each end-to-end type's prefill and decode down by operation "
                        "(perf record -e cpu-clock; needs perf)")
    p.add_argument("--peer", action="append", metavar="NAME",
                   help="also measure this peer runtime (GEMM and end to end), built from its pin in "
                        "configs/peers (e.g. ik_llama; the first run builds it, 10+ minutes)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("serve", help="OpenAI-compatible server on the patched build (llama-cpp-python or llama-server)")
    p.add_argument("model", type=Path, help="GGUF model file (I2_V, I1_V, TQ2_0, or any type llama.cpp loads)")
    p.add_argument("--engine", choices=["python", "native"], default="python",
                   help="python: llama-cpp-python's server (default); native: the patched llama-server with continuous batching")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--ctx", type=int, help="context size per request (default: the model's, at most 4096)")
    p.add_argument("--threads", "-t", type=int, help="CPU threads (default: the CPUs this process may use: affinity mask and cgroup quota)")
    p.add_argument("--api-key-file", type=Path, metavar="FILE",
                   help="require the key in FILE (Authorization: Bearer KEY); or set VECLUT_API_KEY")
    p.add_argument("--api-key", help="require this key; it shows in the process list: prefer VECLUT_API_KEY or --api-key-file")
    p.add_argument("--chat-format", help="chat template name of the engine (default: the template in the GGUF)")
    p.add_argument("--alias", help="model name in the API (default: the file name without .gguf)")
    p.add_argument("--parallel", "-np", type=int, help="native engine: requests decoded together (default 4)")
    p.add_argument("--cache-ram", type=int, metavar="MIB",
                   help="native engine: MiB of RAM for past prompts' state, reused by later requests (default 0: none)")
    p.add_argument("--verbose", action="store_true", help="python engine: llama.cpp's loader log and timings")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("generate", help="print a completion of a prompt (the python engine's settings)")
    p.add_argument("model", type=Path, help="GGUF model file")
    p.add_argument("--prompt", "-p", required=True, help="text to complete")
    p.add_argument("--max-tokens", "-n", type=int, default=128, help="tokens to generate (default 128)")
    p.add_argument("--temp", type=float, help="temperature (default 0.8, as the server; 0 = greedy)")
    p.add_argument("--seed", type=int, help="sampling seed (default: random)")
    p.add_argument("--ctx", type=int, help="context size (default: the model's, at most 4096)")
    p.add_argument("--threads", "-t", type=int, help="CPU threads (default: the CPUs this process may use: affinity mask and cgroup quota)")
    p.add_argument("--verbose", action="store_true", help="show llama.cpp's loader log")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("soak", help="load-test `veclut serve` on loopback: concurrent mixed and malformed requests, "
                                    "latency, tokens/s, memory")
    p.add_argument("model", type=Path, help="GGUF model file to serve")
    p.add_argument("--engine", choices=["python", "native"], default="python", help="server engine (default: python)")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    p.add_argument("--duration", type=float, default=300, help="seconds of load (default 300)")
    p.add_argument("--parallel", "-np", type=int, help="native engine: requests decoded together (default 4)")
    p.add_argument("--threads", "-t", type=int, help="server threads (default: as `veclut serve`)")
    p.add_argument("--ctx", type=int, help="context per request (default: as `veclut serve`)")
    p.add_argument("--seed", type=int, default=1, help="seed of the request mix (default 1)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.set_defaults(func=cmd_soak)

    p = sub.add_parser("quickstart", help="build, convert the fixture model, check it, generate, measure; then how to serve it")
    p.add_argument("--rerun", action="store_true", help="redo the check and the speed table even if build/quickstart has them")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("doctor", help="check compilers, tools, CPU features, cache and build state")
    p.set_defaults(func=cmd_doctor)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except VeclutError as err:
        ui.error(str(err))
        return 1
    except KeyboardInterrupt:
        ui.error("interrupted; run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
