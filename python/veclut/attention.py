"""veclut's attention kernel against float64 and upstream's kernel: test-attention on a built
profile (its cases are fixed in ggml_ext/tests/test-attention.cpp)."""

import json
import os
import subprocess
from pathlib import Path

from .config import BuildProfile
from .errors import VeclutError
from .matrix import stop_reason

LIMIT = 2e-5  # largest error relative to the largest output, as test-attention asserts


def run_attention(profile: BuildProfile, bin_dir: Path, timeout: int = 1800) -> list[dict]:
    """One row per case; raises if test-attention crashes (a failed case is a row with pass=false)."""
    cmd = [*profile.runner, str(bin_dir / "test-attention")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **profile.run_env})
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode not in (0, 1) or not rows:
        raise VeclutError(f"test-attention stopped after {len(rows)} cases (exit {result.returncode}: "
                          f"{stop_reason(result.stderr)}); rerun it by hand: {' '.join(cmd)}")
    return rows
