"""Markdown tables and PNG plots of a `veclut bench` report."""

from pathlib import Path


def _gemm_types(report: dict) -> list[str]:
    seen = []
    for r in report.get("gemm", []):
        if "type" in r and r["type"] not in seen:
            seen.append(r["type"])
    return seen


def _machine_lines(m: dict) -> list[str]:
    cpu = m["cpu"]
    if "cpu_vendor" in m:
        cpu += f" ({m['cpu_vendor']}, family {m['cpu_family']}, model {m['cpu_model']}, stepping {m['cpu_stepping']})"
    threads = m.get("threads") or {}
    used = "; ".join(f"{THREADS_SHOWN[k]} {', '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in threads.items())
    lines = [f"Machine: {cpu}, {m['cores']} logical CPUs ({', '.join(m['features'])}); "
             + (f"threads: {used}; " if used else "")
             + (f"read bandwidth {m['read_gbs']['gbs']:.1f} GB/s with {m['read_gbs']['threads']} threads; "
                if m.get("read_gbs") else "")
             + f"profile `{m['profile']}`, kernels `{m['kernels']}`"
             + (f" (I1_V / TQ1_0 held as {m['i1_layout']})" if m.get("i1_layout", "?") != "?" else "")
             + f"; veclut {m['veclut_commit']}, llama.cpp {m['llama_cpp_commit']}; {m['date']}.", ""]
    if m.get("flags"):
        lines += ["<details><summary>CPU flags</summary>", "", " ".join(m["flags"]), "", "</details>", ""]
    return lines


# report["machine"]["threads"] key -> how the Markdown names it
THREADS_SHOWN = {"gemm": "GEMM", "e2e": "end to end"}


def _peer_lines(report: dict) -> list[str]:
    """Each peer: where it comes from and how it was built and run, or why it is missing."""
    lines = []
    for name, p in (report.get("peers") or {}).items():
        origin = (f"PyPI {p['package']} {p['version']} (sha256 {p['sha256'][:12]}…, vendored commit {p['commit'][:10]})"
                  if "package" in p else "")
        if p["status"] != "measured":
            lines += [f"- **{name}: missing** — {p['reason']}" + (f". Pinned: {origin}." if origin else "")]
            continue
        args = "; ".join(f"{prog} `{' '.join(p[key]) or '(defaults)'}`"
                         for prog, key in (("llama-bench", "llama_bench_args"), ("llama-batched-bench", "batched_bench_args")))
        lines += [f"- **{name}** (rows `{p['label']}:TYPE`): {origin}, built in `{p['build_dir']}` with "
                  f"`{' '.join(f'{k}={v}' for k, v in p['cmake'].items())}`; extra arguments: {args}."]
        lines += [f"  - {what} missing: {why}" for what, why in (p.get("failed") or {}).items()]
    return ["## Peer runtimes", "", *lines, ""] if lines else []


def _breakdown_lines(report: dict) -> list[str]:
    """Per suite, a table of operations x (type, phase): each one's share of the run's samples."""
    from .bench_profile import OPERATIONS, OTHER

    rows = report.get("breakdown") or []
    if not rows:
        return []
    lines = ["## Where the time goes (perf, cpu-clock; share of each run's samples)", ""]
    for suite in dict.fromkeys(r["suite"] for r in rows):
        runs = [r for r in rows if r["suite"] == suite]
        ops = [name for name, _ in OPERATIONS] + [OTHER]
        ops = [op for op in ops if any(r.get("shares", {}).get(op, 0) >= 0.005 for r in runs)]
        lines += [f"### {suite}", "", "| operation | " + " | ".join(f"{r['type']} {r['test']}" for r in runs) + " |",
                  "|---|" + "---:|" * len(runs)]
        for op in ops:
            lines.append(f"| {op} | " + " | ".join(f"{100 * r['shares'].get(op, 0):.1f} %" if "shares" in r else "—"
                                                for r in runs) + " |")
        lines += [""] + [f"- {r['type']} {r['test']}: {r['error']}" for r in runs if "error" in r] + [""]
    return lines


def _target_lines(report: dict) -> list[str]:
    """The speed targets this run measured, each with its verdict and worst point."""
    from .bench_targets import summary_line

    entries = report.get("targets") or []
    measured = [e for e in entries if e["holds"] is not None]
    if not measured:
        return []
    skipped = len(entries) - len(measured)
    return ["## Targets", "", *[f"- {'✅' if e['holds'] else '❌'} {summary_line(e)}" for e in measured],
            *([f"- {skipped} more not measured by this run"] if skipped else []), ""]


def _ratio_table(rows: list[dict], heading: str) -> list[str]:
    if not rows:
        return []
    return [f"| test | {heading} | × |", "|---|---|---:|",
            *[f"| {r['test']} | {r['type']} / {r['baseline']} | **{r['speedup']:.2f}** |" for r in rows], ""]


def markdown(report: dict, images: list[str]) -> str:
    m = report["machine"]
    peer_note = "; `L:X` is type X on the peer runtime with label L (see Peer runtimes)" if report.get("peers") else ""
    lines = ["# veclut benchmark", "", *_machine_lines(m),
             f"Reproduce: `{report['command']}`", "",
             "Medians of repeated runs with [min–max]; upstream types run by upstream's kernels in the same run; "
             f"`X+` is upstream type X accelerated by veclut{peer_note}.", ""]
    gemm = [r for r in report.get("gemm", []) if "type" in r]
    if gemm:
        types = _gemm_types(report)
        speedups = {(r["ratio"], r["M"], r["K"], r["N"], r["threads"]): r["speedup"] for r in report["gemm"] if "ratio" in r}
        ratio_names = sorted({r["ratio"] for r in report["gemm"] if "ratio" in r})
        lines += ["## GEMM (GOPS = 2·M·K·N / time)", ""]
        groups = sorted({(r["suite"], r["M"], r["K"], r["threads"]) for r in gemm})
        for suite, M, K, threads in groups:
            lines += [f"### {suite}: {M}×{K}, {threads} thread{'s' if threads > 1 else ''}", "",
                      "| N | " + " | ".join(types) + " | " + " | ".join(f"{n} ×" for n in ratio_names) + " |",
                      "|---:|" + "---:|" * (len(types) + len(ratio_names))]
            rows = {(r["type"], r["N"]): r for r in gemm if (r["suite"], r["M"], r["K"], r["threads"]) == (suite, M, K, threads)}
            for n in sorted({n for (_, n) in rows}):
                cells = [f"{rows[(t, n)]['gops']:.0f} [{rows[(t, n)]['gops_min']:.0f}–{rows[(t, n)]['gops_max']:.0f}]"
                         if (t, n) in rows else "" for t in types]
                cells += [f"**{speedups[(q, M, K, n, threads)]:.2f}**" if (q, M, K, n, threads) in speedups else "" for q in ratio_names]
                lines.append(f"| {n} | " + " | ".join(cells) + " |")
            lines.append("")
    e2e = report.get("e2e", [])
    if e2e:
        types = list(dict.fromkeys(r["type"] for r in e2e))
        lines += [f"## End to end (tokens/s, {m.get('threads', {}).get('e2e', 2)} threads)", ""]
        if report.get("batched_bench_args"):
            lines += [f"veclut's llama-batched-bench runs with `{' '.join(report['batched_bench_args'])}`.", ""]
        for suite in dict.fromkeys(r["suite"] for r in e2e):
            tests = list(dict.fromkeys(r["test"] for r in e2e if r["suite"] == suite))
            rows = {(r["type"], r["test"]): r for r in e2e if r["suite"] == suite}
            lines += [f"### {suite}", "", "| test | " + " | ".join(types) + " |", "|---|" + "---:|" * len(types)]
            for test in tests:
                cells = [f"{rows[(t, test)]['median']:.1f} [{rows[(t, test)]['min']:.1f}–{rows[(t, test)]['max']:.1f}]"
                         if (t, test) in rows else "" for t in types]
                lines.append(f"| {test} | " + " | ".join(cells) + " |")
            lines.append("")
            roof = [r for r in e2e if r["suite"] == suite and "roofline" in r]
            if roof:
                lines += ["Generation against the bandwidth roofline (weights read per token × tokens/s ÷ read "
                          "bandwidth): " + "; ".join(f"{r['type']} {r['test']} {100 * r['roofline']:.0f} % "
                                                     f"({r['read_gbs']:.1f} GB/s)" for r in roof) + ".", ""]
            lines += _ratio_table([r for r in report.get("e2e_ratios", []) if r["suite"] == suite], "speed-up")
            lines += _ratio_table([r for r in report.get("peer_ratios", []) if r["suite"] == suite], "veclut / peer")
    lines += _breakdown_lines(report)
    lines += _peer_lines(report)
    lines += _target_lines(report)
    if report.get("regressions"):
        lines += ["## Slower than the baseline", ""] + [f"- {f}" for f in report["regressions"]] + [""]
    lines += [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def plots(out_dir: Path, report: dict) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = []
    gemm = [r for r in report.get("gemm", []) if "type" in r]
    for suite in dict.fromkeys(r["suite"] for r in gemm):
        rows = [r for r in gemm if r["suite"] == suite]
        threads = max(r["threads"] for r in rows)
        shapes = sorted({(r["M"], r["K"]) for r in rows})
        fig, axes = plt.subplots(1, len(shapes), figsize=(5 * len(shapes), 4), squeeze=False)
        for ax, (M, K) in zip(axes[0], shapes):
            for t in _gemm_types(report):
                pts = sorted((r["N"], r["gops"]) for r in rows if r["type"] == t and (r["M"], r["K"], r["threads"]) == (M, K, threads))
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=t)
            ax.set_xscale("log", base=2)
            ax.set_title(f"{M}×{K}, {threads} thread{'s' if threads > 1 else ''}")
            ax.set_xlabel("tokens N")
            ax.set_ylabel("GOPS")
            ax.grid(alpha=0.3)
        axes[0][0].legend()
        fig.suptitle(f"GEMM speed vs N: {suite}")
        fig.tight_layout()
        name = f"gemm-{suite}.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        images.append(name)

        ratios = [r for r in report["gemm"] if "ratio" in r and r["suite"] == suite and r["threads"] == threads]
        if ratios:
            fig, ax = plt.subplots(figsize=(6, 4))
            for (ratio, M, K) in sorted({(r["ratio"], r["M"], r["K"]) for r in ratios}):
                pts = sorted((r["N"], r["speedup"]) for r in ratios if (r["ratio"], r["M"], r["K"]) == (ratio, M, K))
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{ratio} {M}×{K}")
            ax.axhline(1.0, color="grey", lw=1)
            ax.set_xscale("log", base=2)
            ax.set_xlabel("tokens N")
            ax.set_ylabel("speed-up over the baseline")
            ax.set_title(f"veclut vs upstream and peers: {suite}, {threads} threads")
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            name = f"speedup-{suite}.png"
            fig.savefig(out_dir / name, dpi=110)
            plt.close(fig)
            images.append(name)

    e2e = report.get("e2e", [])
    for suite in dict.fromkeys(r["suite"] for r in e2e):
        rows = [r for r in e2e if r["suite"] == suite]
        tests = list(dict.fromkeys(r["test"] for r in rows))
        types = list(dict.fromkeys(r["type"] for r in rows))
        fig, ax = plt.subplots(figsize=(2 + 1.6 * len(tests), 4))
        width = 0.8 / len(types)
        for i, t in enumerate(types):
            values = [next((r["median"] for r in rows if r["type"] == t and r["test"] == test), 0) for test in tests]
            ax.bar([j + i * width for j in range(len(tests))], values, width, label=t)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(tests))], tests)
        ax.set_ylabel("tokens/s")
        ax.set_title(f"end to end: {suite}")
        ax.legend(fontsize=8)
        fig.tight_layout()
        name = f"e2e-{suite}.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        images.append(name)
    for suite in dict.fromkeys(r["suite"] for r in report.get("peer_ratios", [])):
        images.append(_ratio_bars(plt, out_dir, [r for r in report["peer_ratios"] if r["suite"] == suite],
                                  f"veclut vs peer: {suite}", f"peer-{suite}.png"))
    return images


def _ratio_bars(plt, out_dir: Path, rows: list[dict], title: str, name: str) -> str:
    """Grouped bars: one group per test, one bar per compared pair (type / baseline), a line at 1."""
    tests = list(dict.fromkeys(r["test"] for r in rows))
    pairs = list(dict.fromkeys(f"{r['type']} / {r['baseline']}" for r in rows))
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(tests), 4))
    width = 0.8 / len(pairs)
    for i, pair in enumerate(pairs):
        values = [next((r["speedup"] for r in rows if f"{r['type']} / {r['baseline']}" == pair and r["test"] == test), 0)
                  for test in tests]
        ax.bar([j + i * width for j in range(len(tests))], values, width, label=pair)
    ax.axhline(1.0, color="grey", lw=1)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(tests))], tests)
    ax.set_ylabel("speed ratio (> 1: veclut faster)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name
