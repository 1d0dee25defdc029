"""Where the time goes, per operation: `veclut bench e2e --breakdown` runs llama-bench once more
under `perf record -e cpu-clock` (a software event, so it works inside a VM) for prefill and for
decode, and sorts the samples by symbol into the operations of a transformer layer. The same
table classifies veclut's, upstream's and the peer's symbols; shares are of all samples of the
run, model loading included (its own row)."""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import ui
from .errors import VeclutError

# (operation, pattern on "dso|symbol"), first match wins: more specific operations come first.
OPERATIONS = [
    ("model loading", r"repack_rows|_to_trits|_from_trits|llama_model_loader|load_all_data|vocab::impl::load|"
                      r"quantize_(i2|i1|q2)_v|ggml_backend_tensor_set|\[k\] (clear_page|copy_page|filemap)"),
    ("activation quantization", r"quantize_row_q8|quantize_q8|from_float"),
    ("attention", r"veclut::(attention|attend)|flash_attn|Flash|soft_max|softmax|rope|vec_dot_f16|vec_mad_f16|fa4|"
                  r"HelperF16|kq_|mul_mat_f16|ggml_compute_forward_(get_rel|cpy_f32_f16)"),  # before veclut::
    ("ternary matmul", r"veclut::|mul_mat_iq[12]_bn|iq[12]bn|iq[12]_bn|vec_dot_tq[12]_0|vec_dot_i[12]_v"),
    ("output head and other quantized matmuls", r"q6_K|Q6K|q4_K|Q4K|q8_0|Q8_0|mul_mat_qY|mul_mat_qX|iqk_mul_mat|"
                                                r"ggml_compute_forward_mul_mat"),
    ("norms and element-wise ops", r"norm|ggml_compute_forward_(add|mul|silu|swiglu|glu|scale|cpy|dup|get_rows|"
                                   r"sub|unary|relu|gelu|cont|set_rows)|ggml_vec_(add|mul|silu|scale|swiglu)"),
    ("threads waiting (OpenMP spin, barriers)", r"libgomp|ggml_barrier|sched_yield|futex|gomp_|omp_"),
    ("kernel (page faults, scheduling)", r"\[k\]"),
]
OTHER = "other"


def classify(dso: str, symbol: str) -> str:
    key = f"{dso}|{symbol}"
    return next((name for name, pattern in OPERATIONS if re.search(pattern, key)), OTHER)


def shares(perf_report: str) -> dict[str, float]:
    """Share of samples per operation from `perf report --sort dso,symbol -t '|'` text."""
    out: dict[str, float] = {}
    for line in perf_report.splitlines():
        parts = [p.strip() for p in line.split("|", 2)]
        if len(parts) != 3 or not parts[0].endswith("%"):
            continue
        try:
            percent = float(parts[0].rstrip("%"))
        except ValueError:
            continue
        op = classify(parts[1], parts[2])
        out[op] = out.get(op, 0.0) + percent / 100
    return out


def require_perf() -> None:
    if shutil.which("perf") is None:
        raise VeclutError("--breakdown needs perf, which is not installed; install it (Debian: "
                          "`apt-get install linux-perf`) and run again")


def profile(cmd: list[str], env: dict, cwd: Path | None, what: str) -> dict[str, float]:
    """Operation shares of one run of `cmd` under perf record (cpu-clock, 999 Hz)."""
    with tempfile.TemporaryDirectory(prefix="veclut-perf-") as tmp:
        data = Path(tmp) / "perf.data"
        record = ["perf", "record", "-e", "cpu-clock", "-F", "999", "-o", str(data), "--", *cmd]
        with ui.status(f"profiling {what}"):
            result = subprocess.run(record, capture_output=True, text=True, env={**os.environ, **env}, cwd=cwd)
        if result.returncode != 0 or not data.is_file():
            tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise VeclutError(f"perf record failed on {what} ({tail})")
        report = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--sort", "dso,symbol", "--stdio",
                                 "-q", "-t", "|", "--percent-limit", "0"], capture_output=True, text=True)
    found = shares(report.stdout)
    if not found:
        raise VeclutError(f"perf report gave no samples for {what}; run `perf record` by hand to see why")
    return found


def llama_bench_phases(program: Path, model: Path, cfg: dict, extra: tuple = ()) -> dict[str, list[str]]:
    """The two runs profiled: prefill only and decode only, one repetition each."""
    base = [str(program), "-m", str(model), "-t", str(cfg["threads"]), "-r", "1", *extra]
    return {f"pp{cfg['prompt']}": base + ["-p", str(cfg["prompt"]), "-n", "0"],
            f"tg{cfg['gen']}": base + ["-p", "0", "-n", str(cfg["gen"])]}
