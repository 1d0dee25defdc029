"""Upstream's own quantized types in batches of several rows, on the patched build.

On a CPU with AMX, ggml places Q4_0 / Q4_K / Q6_K / ... weights in its AMX buffer, and every
MUL_MAT of more than one row loads a tile configuration; built by Debian 12's GCC, that load
faulted (SIGSEGV) until patch 0012. These tests run such batches everywhere: on a CPU without
AMX they check ggml's ordinary path, which never crashed.
"""

import re
import subprocess

import pytest

from conftest import FIXTURE
from veclut.logits import compare

# Q4_0 / Q4_K_M on the 256-wide fixture cost 1.8e-3 / 1.1e-4 mean KLD against F32 (Intel Xeon
# with AMX, family 6 model 167); a wrong tile configuration gives garbage, far beyond these.
MAX_KLD = {"Q4_0": 0.02, "Q4_K_M": 0.005}


def _amx_built(log: str) -> bool:
    return "AMX_INT8 = 1" in log


@pytest.mark.parametrize("type_name", sorted(MAX_KLD))
def test_prompt_batches_of_upstream_types_match_f32(native_build, quantized, f32_model, type_name):
    """llama-perplexity evaluates 256 tokens per batch: MUL_MATs of 256 rows on every weight."""
    result = compare(native_build.bin_dir, f32_model, quantized(type_name), FIXTURE / "heldout.txt",
                     extra=("--chunks", "8"))
    assert result.kld <= MAX_KLD[type_name], (
        f"{type_name}: KLD {result.kld} against F32 (AMX build: {_amx_built(result.log)})")


def test_several_sequences_decode_on_upstream_types(native_build, quantized):
    """4 sequences decoded together: MUL_MATs of 4 rows (the crash patch 0012 fixes)."""
    model = quantized("Q4_K_M")
    result = subprocess.run([str(native_build.bin_dir / "llama-batched-bench"), "-m", str(model), "-c", "256",
                             "-npp", "16", "-ntg", "8", "-npl", "1,4", "-t", "2", "--output-format", "jsonl"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-1500:]}"
    assert re.search(r'"pl":\s*4\b', result.stdout), result.stdout[-1500:]
