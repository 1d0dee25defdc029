"""`veclut quickstart`: the first command on a fresh machine. Builds the native profile (if
needed), converts the project's ternary fixture model to I2_V and I1_V, checks it against
upstream (`veclut check --quick`), prints a passage the I2_V model generates, measures GEMM at
N = 1, 32, 256 against upstream's kernels on a real-model shape, and ends with the command that
serves the model.

Everything lands in build/quickstart/. state.json records what was done for which build (the
libraries' sizes and times): a re-run on the same build reuses the models, the check and the
speed table, so it takes seconds; a rebuild redoes them."""

import json
import shlex
import tempfile
import time
from functools import partial
from pathlib import Path

from rich.table import Table

from . import __version__, atomic, ui
from .cpus import usable_cpus
from .errors import VeclutError
from .paths import build_root, project_root

FIXTURE = Path("fixtures/bitnet-shakespeare")
MODELS = (("TQ2_0", "I2_V"), ("TQ1_0", "I1_V"))  # (upstream source in the fixture, new type)
PROMPT = "ROMEO.\n"
PASSAGE_TOKENS = 160
PASSAGE_SEED = 1  # the server's sampling defaults (temperature 0.8); greedy decoding loops on this tiny model
SUITE, SHAPE = "bitnet-2b-4t", "6912x2560"  # BitNet b1.58 2B-4T's FFN up/gate projection (M x K)
TOKENS = [1, 32, 256]
REPS = 5
FINGERPRINTED = ("libggml-base.so", "libggml-cpu.so", "libllama.so", "bench-veclut", "test-veclut", "llama-perplexity")


def out_dir() -> Path:
    return build_root() / "quickstart"


def _import_bound_packages() -> None:
    """A build may have just installed gguf-py (editable: a .pth file) and llama-cpp-python into
    this environment; make both importable in this process without a restart."""
    import importlib
    import site
    import sysconfig

    site.addsitedir(sysconfig.get_paths()["purelib"])  # processes new .pth files
    importlib.invalidate_caches()


def fingerprint(bin_dir: Path) -> dict:
    """What the reusable results depend on: the built libraries and programs, the fixture, veclut."""
    files = [bin_dir / name for name in FINGERPRINTED]
    files += [project_root() / FIXTURE / f"fixture-{src.lower()}.gguf" for src, _ in MODELS]
    marks = {}
    for path in files:
        if not path.exists():
            raise VeclutError(f"{path} is missing; run `veclut build` (or restore the fixture from git)")
        st = path.resolve().stat()
        marks[path.name] = [st.st_size, st.st_mtime_ns]
    return {"veclut": __version__, "files": marks}


def _load_state(path: Path, marks: dict, rerun: bool) -> dict:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"fingerprint": marks}
    if rerun or state.get("fingerprint") != marks:
        return {"fingerprint": marks}
    return state


def _save_state(path: Path, state: dict) -> None:
    atomic.write_text(path, json.dumps(state, indent=2) + "\n", f"write {path}")


class _Steps:
    """Numbered headings, and how long each step took (the summary names the slow ones)."""

    def __init__(self):
        self.times: dict[str, float] = {}
        self._name, self._start = None, 0.0

    def __call__(self, number: int, name: str, text: str) -> None:
        self.end()
        self._name, self._start = name, time.monotonic()
        ui.out.print(f"\n[bold]{number}/5 {text}[/bold]")

    def end(self) -> None:
        if self._name:
            self.times[self._name] = time.monotonic() - self._start
            self._name = None

    def summary(self) -> str:
        self.end()
        return ", ".join(f"{name} {seconds:.0f}" for name, seconds in self.times.items())


def convert_models(state: dict, work: Path) -> dict[str, Path]:
    from .convert import run as convert

    made = {}
    for src_type, new_type in MODELS:
        src = project_root() / FIXTURE / f"fixture-{src_type.lower()}.gguf"
        out = work / f"fixture-{new_type.lower()}.gguf"
        if out.is_file() and new_type in state.get("converted", []):
            ui.info(f"{out.name}: converted earlier for this build")
        else:
            convert(src, out, new_type, force=True)
            state["converted"] = sorted(set(state.get("converted", [])) | {new_type})
        made[new_type] = out
    return made


def quick_check(state: dict, work: Path, bin_dir: Path) -> None:
    """`veclut check --quick` for this machine's build: the quick kernel matrix of the native
    profile and the fixture's logits vs upstream (cross-compiled profiles are left to `veclut check`)."""
    from . import check

    report = work / "check.json"
    if state.get("check") == "passed" and report.is_file():
        ui.info(f"passed earlier on this build ({report}); `veclut quickstart --rerun` checks again")
        return
    rows = check.kernel_rows("native", quick=True)
    with tempfile.TemporaryDirectory(prefix="veclut-quickstart-") as scratch:
        rows += check.fixture_rows(bin_dir, Path(scratch))
    check.print_table(rows)
    passed = all(r["pass"] for r in rows)
    atomic.write_text(report, json.dumps({"machine": check.machine(), "profile": "native", "quick": True,
                                          "rows": rows, "passed": passed}, indent=2) + "\n", f"write {report}")
    if not passed:
        first = next(r["what"] for r in rows if not r["pass"])
        raise VeclutError(f"the quick check failed ({first}; table above, details in {report}); "
                          "do not use the new types on this machine until `veclut check --quick` passes, and report it")
    ui.info(f"all {len(rows)} checks passed")
    state["check"] = "passed"


def passage(model: Path) -> str:
    from .generate import load, stream

    llm = load(model)
    text = "".join(stream(llm, PROMPT, PASSAGE_TOKENS, seed=PASSAGE_SEED))
    return PROMPT + text


def gemm(state: dict, threads: int) -> list[dict]:
    from . import bench

    if state.get("gemm"):
        ui.info("measured earlier on this build; `veclut quickstart --rerun` measures again")
        return state["gemm"]
    suite = dict(bench.suites()[SUITE], gemm_shapes=[SHAPE])
    types = [t for pair in MODELS for t in (pair[1], pair[0])]
    rows = bench.run_gemm("native", {SUITE: suite}, types, TOKENS, [threads], REPS)
    state["gemm"] = rows
    return rows


def gemm_table(rows: list[dict], threads: int) -> Table:
    speed = {(r["type"], r["N"]): r["gops"] for r in rows if "type" in r}
    table = Table(title=f"GEMM {SHAPE} (M x K of BitNet b1.58 2B-4T), {threads} threads: GOPS, median of {REPS}",
                  caption="TQ2_0 and TQ1_0 are run by upstream's kernels")
    table.add_column("N", justify="right")
    for upstream, new in MODELS:
        for column in (new, upstream, "speed-up"):
            table.add_column(column, justify="right")
    for n in TOKENS:
        cells = [str(n)]
        for upstream, new in MODELS:
            ours, theirs = speed.get((new, n)), speed.get((upstream, n))
            ratio = f"{ours / theirs:.2f}x" if ours and theirs else "-"
            cells += [f"{ours:.1f}" if ours else "-", f"{theirs:.1f}" if theirs else "-", ratio]
        table.add_row(*cells)
    return table


def _shown(path: Path) -> str:
    try:
        return shlex.quote(str(path.resolve().relative_to(Path.cwd())))
    except ValueError:
        return shlex.quote(str(path))


def run(rerun: bool = False) -> int:
    from .build import build

    started = time.monotonic()
    step = _Steps()
    work = out_dir()
    atomic.make_dirs(work, f"create {work}")

    step(1, "build", "build the patched llama.cpp (native profile) and bind Python to it")
    result = build("native", bind=True)
    ui.info("up to date" if result.up_to_date else f"built into {result.bin_dir}")
    _import_bound_packages()

    state_file = work / "state.json"
    state = _load_state(state_file, fingerprint(result.bin_dir), rerun)

    step(2, "convert", "convert the fixture ternary model (TQ2_0 / TQ1_0) to I2_V and I1_V")
    models = convert_models(state, work)
    _save_state(state_file, state)

    step(3, "check", "check the new kernels and the models against upstream (veclut check --quick)")
    quick_check(state, work, result.bin_dir)
    _save_state(state_file, state)

    step(4, "generate", f"generate with {models['I2_V'].name} ({PASSAGE_TOKENS} tokens, temperature 0.8, seed {PASSAGE_SEED})")
    # the fixture's vocabulary is bytes: a space comes out as U+2581 (SentencePiece's marker)
    ui.out.print(passage(models["I2_V"]).replace("\u2581", " "), markup=False, highlight=False)

    threads = usable_cpus()
    step(5, "GEMM", f"GEMM speed vs upstream at N = {', '.join(map(str, TOKENS))}")
    rows = gemm(state, threads)
    _save_state(state_file, state)
    ui.out.print(gemm_table(rows, threads))

    model = _shown(models["I2_V"])
    say = partial(ui.out.print, markup=False, soft_wrap=True)  # commands stay on one line to copy
    timings = step.summary()
    say(f"\nDone in {time.monotonic() - started:.0f} s ({timings} s). Serve the model (OpenAI API at http://127.0.0.1:8000/v1):\n")
    say(f"    veclut serve {model}")
    say("\nor, for many clients at once (continuous batching, where the vector-LUT kernels gain most):\n")
    say(f"    veclut serve {model} --engine native --parallel 4")
    say(f"\nA completion without a server:\n\n    veclut generate {model} -p {shlex.quote(PROMPT.strip())}")
    return 0
