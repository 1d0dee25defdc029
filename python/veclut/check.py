"""`veclut check`: the regression harness users run in CI. The kernel equivalence matrix
(veclut vs float64 vs upstream's kernels on identical weights) on a built profile, and on the
arm64 profile under qemu-user when it is built; model-level logit checks on the project's
ternary fixture and on any GGUF named. Prints a table, writes JSON and JUnit XML."""

import json
import platform
import tempfile
from dataclasses import asdict
from pathlib import Path

from rich.table import Table

from . import atomic, cpuinfo, junit, ui
from .attention import LIMIT as ATTENTION_LIMIT, run_attention
from .config import UPSTREAM_KERNELS as UPSTREAM, load_profile, profile_files
from .errors import VeclutError
from .logits import compare
from .matrix import load_matrix, run_matrix
from .paths import profile_build_dir, project_root

LIMITS = {"KLD": 2e-4, "same top token": 0.99, "|PPL ratio - 1|": 1e-3}
CHUNKS = ("--chunks", "24")
FIXTURE = Path("fixtures/bitnet-shakespeare")


def _built(name: str):
    profile = load_profile(name)
    bin_dir = profile_build_dir(name) / "bin"
    if not (bin_dir / "test-veclut").exists():
        raise VeclutError(f"profile {name} is not built; run `veclut build --profile {name}` first")
    if reason := cpuinfo.cannot_run_reason(profile):
        raise VeclutError(reason)
    return profile, bin_dir


def kernel_rows(name: str, quick: bool) -> list[dict]:
    profile, bin_dir = _built(name)
    level = profile.check_matrix if quick or not profile.host_runnable else "full"
    with ui.status(f"kernel matrix '{level}' on profile {name}"):
        results = run_matrix(profile, bin_dir, load_matrix(level))
    groups: dict[str, list] = {}
    for r in results:
        groups.setdefault(f"{r['kernels']}/{r['variant']}", []).append(r)
    rows = []
    for key, cases in sorted(groups.items()):
        failed = [r for r in cases if not r["pass"]]
        rows.append({"group": f"kernels.{name}", "what": f"{name}/{key} ({len(cases)} cases)",
                     "metric": "NMSE vs upstream", "worst": max(r["nmse_upstream"] for r in cases),
                     "limit": cases[0]["max_nmse_upstream"], "pass": not failed,
                     "detail": json.dumps(failed[0]) if failed else ""})
    with ui.status(f"attention on profile {name}"):
        cases = run_attention(profile, bin_dir)
    failed = [r for r in cases if not r["pass"]]
    rows.append({"group": f"kernels.{name}", "what": f"{name}/attention ({len(cases)} cases)",
                 "metric": "error vs float64", "worst": max(r["error"] for r in cases if r["veclut_ran"]),
                 "limit": ATTENTION_LIMIT, "pass": not failed, "detail": json.dumps(failed[0]) if failed else ""})
    return rows


def logit_rows(name: str, result) -> list[dict]:
    values = {"KLD": result.kld, "same top token": result.same_top, "|PPL ratio - 1|": abs(result.ppl_ratio - 1)}
    rows = []
    for metric, value in values.items():
        ok = value >= LIMITS[metric] if metric == "same top token" else value <= LIMITS[metric]
        rows.append({"group": "model", "what": f"{name}: {metric}", "metric": metric, "worst": value,
                     "limit": LIMITS[metric], "pass": ok,
                     "detail": json.dumps({k: v for k, v in asdict(result).items() if k != "log"})})
    return rows


def fixture_rows(bin_dir: Path, work: Path) -> list[dict]:
    """The project's ternary model, shipped as TQ2_0 / TQ1_0 GGUFs, converted to I2_V / I1_V and
    compared with the upstream file run by upstream's kernels."""
    from .convert import run as convert

    root = project_root() / FIXTURE
    rows = []
    for upstream, ours in (("TQ2_0", "I2_V"), ("TQ1_0", "I1_V")):
        source = root / f"fixture-{upstream.lower()}.gguf"
        if not source.is_file():
            raise VeclutError(f"{source} is missing; regenerate the fixture as {FIXTURE}/README.md says")
        converted = work / f"fixture-{ours.lower()}.gguf"
        convert(source, converted, ours, force=True)
        with ui.status(f"logits: fixture {ours} vs upstream {upstream}"):
            result = compare(bin_dir, source, converted, root / "heldout.txt", base_env=UPSTREAM, extra=CHUNKS)
        rows += logit_rows(f"fixture {ours} vs upstream {upstream}", result)
    return rows


def model_rows(bin_dir: Path, model: Path, text: Path) -> list[dict]:
    """A user's GGUF against itself on the reference path: ggml's own kernels (--no-repack, and
    upstream's for TQ1_0 / TQ2_0), which the kernel matrix ties to upstream's."""
    with ui.status(f"logits: {model.name}"):
        result = compare(bin_dir, model, model, text, base_env=UPSTREAM, extra=CHUNKS, base_extra=("--no-repack",))
    return logit_rows(f"{model.name} veclut vs reference", result)


def machine() -> dict:
    return {"cpu": cpuinfo.model_name(), "features": [k for k, v in cpuinfo.features().items() if v],
            "python": platform.python_version(), "system": platform.platform()}


def print_table(rows: list[dict]) -> None:
    table = Table(title="veclut check")
    for column in ("check", "worst", "limit", "result"):
        table.add_column(column)
    for r in rows:
        verdict = "[green]pass[/]" if r["pass"] else "[bold red]FAIL[/]"
        table.add_row(r["what"], f"{r['worst']:.3g}", f"{r['limit']:.3g}", verdict)
    ui.out.print(table)


def _validate_inputs(bin_dir: Path, profile: str, models: list[Path], text: Path | None, fixture: bool) -> None:
    """Fail before the long matrix runs, not after."""
    for model in models:
        if not model.is_file():
            raise VeclutError(f"{model} does not exist; name a GGUF model file")
        with model.open("rb") as handle:
            if handle.read(4) != b"GGUF":
                raise VeclutError(f"{model} is not a GGUF file (no GGUF magic); name a GGUF model file")
    if text is not None and not text.is_file():
        raise VeclutError(f"the text file {text} does not exist; give a UTF-8 text for the model checks")
    if (models or fixture) and not (bin_dir / "llama-perplexity").exists():
        raise VeclutError(f"profile {profile} has no llama-perplexity for the model checks; "
                          "use the native profile or pass --no-fixture without --model")


def run(profile: str, quick: bool, models: list[Path], text: Path | None, json_out: Path | None,
        junit_out: Path | None, fixture: bool = True) -> int:
    _, bin_dir = _built(profile)
    _validate_inputs(bin_dir, profile, models, text, fixture)
    rows = kernel_rows(profile, quick)
    emulated_profiles = [name for name in profile_files() if not load_profile(name).host_runnable]
    for emulated in emulated_profiles:  # cross-compiled profiles run under qemu-user once built
        if emulated != profile and (profile_build_dir(emulated) / "bin" / "test-veclut").exists():
            rows += kernel_rows(emulated, quick)
    if models or fixture:
        with tempfile.TemporaryDirectory(prefix="veclut-check-") as work:
            if fixture:
                rows += fixture_rows(bin_dir, Path(work))
            for model in models:
                rows += model_rows(bin_dir, model, text or project_root() / FIXTURE / "heldout.txt")
    print_table(rows)
    report = {"machine": machine(), "profile": profile, "quick": quick, "rows": rows,
              "passed": all(r["pass"] for r in rows)}
    if json_out:
        atomic.write_text(json_out, json.dumps(report, indent=2) + "\n", f"write {json_out}")
    if junit_out:
        junit.write(junit_out, "veclut-check", rows)
    failed = [r for r in rows if not r["pass"]]
    if failed:
        ui.error(f"{len(failed)} of {len(rows)} checks failed, first: {failed[0]['what']}")
        return 1
    ui.info(f"all {len(rows)} checks passed")
    return 0
