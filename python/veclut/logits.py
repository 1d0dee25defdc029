"""Model-level comparison with llama-perplexity: KL divergence, same top token, perplexity ratio."""

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .cpus import usable_cpus
from .errors import VeclutError

_NUMBER = r"([-+]?(?:nan|inf|[\d.]+(?:[eE][-+]?\d+)?))"  # printf's %lf, NaN and infinity included
_FIELDS = {
    "kld": r"Mean\s+KLD:\s+" + _NUMBER,
    "same_top": r"Same top p:\s+" + _NUMBER,
    "ppl_ratio": r"Mean PPL\(Q\)/PPL\(base\)\s*:\s+" + _NUMBER,
    "ppl": r"Mean PPL\(Q\)\s*:\s+" + _NUMBER,
    "ppl_base": r"Mean PPL\(base\)\s*:\s+" + _NUMBER,
}


@dataclass
class LogitComparison:
    kld: float          # mean KL divergence of the test model's token distributions from the base's
    same_top: float     # fraction of positions where both pick the same top token
    ppl_ratio: float    # PPL(test) / PPL(base)
    ppl: float
    ppl_base: float
    log: str = ""       # what llama-perplexity printed for the test model (buffer sizes, ...)


def _run(cmd: list[str], env: dict, what: str) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, timeout=3600)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise VeclutError(f"llama-perplexity failed on {what} ({tail})")
    return result.stdout + result.stderr


def compare(bin_dir: Path, base: Path, test: Path, text: Path, *, ctx: int = 256, threads: int | None = None,
            base_env: dict | None = None, test_env: dict | None = None, extra: tuple = (),
            base_extra: tuple = ()) -> LogitComparison:
    """Logits of `test` against those of `base` over `text` (both run by the same llama-perplexity;
    `base_env` / `base_extra` select the reference kernels for the base run)."""
    program = str(bin_dir / "llama-perplexity")
    common = ["-f", str(text), "-c", str(ctx), "-b", str(ctx), "-t", str(threads or usable_cpus()), "--no-warmup", *extra]
    with tempfile.TemporaryDirectory(prefix="veclut-kld-") as tmp:
        saved = str(Path(tmp) / "base.kld")
        _run([program, "-m", str(base), "--kl-divergence-base", saved, *common, *base_extra], base_env or {},
             f"the base {base.name}")
        out = _run([program, "-m", str(test), "--kl-divergence-base", saved, "--kl-divergence", *common],
                   test_env or {}, f"{test.name} against its base")
    values = {}
    for key, pattern in _FIELDS.items():
        match = re.search(pattern, out)
        if not match:
            last = (out.strip().splitlines() or ["nothing"])[-1].strip()
            raise VeclutError(f"llama-perplexity printed no '{key}' for {test.name} (its last line: {last!r}); "
                              "check that patches/ are applied (0007 flushes the log at exit)")
        values[key] = float(match[1])
    values["same_top"] /= 100.0
    return LogitComparison(**values, log=out)
