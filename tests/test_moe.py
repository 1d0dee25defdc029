"""Mixture of experts: MUL_MAT_ID on veclut's kernels at model level. A synthetic model in the
Mixtral layout on the llama graph (router + 3-D expert stacks), random ternary weights, 8
experts with 2 per token, in I2_V / I1_V must give the logits of the same model in TQ2_0 /
TQ1_0 run by upstream's kernels within veclut check's limits (issue 3's model-level limits)."""

import re
from pathlib import Path

import pytest

from veclut.check import logit_rows
from veclut.config import UPSTREAM_KERNELS
from veclut.logits import compare

pytestmark = pytest.mark.build

TEXT = Path(__file__).resolve().parents[1] / "fixtures/bitnet-shakespeare/heldout.txt"
MOE = {"arch": "llama", "hidden": 256, "ffn": 512, "layers": 2, "heads": 4, "kv_heads": 4, "vocab": 512,
       "experts": 8, "experts_used": 2}
BITS = {"I2_V": 2.0625, "I1_V": 1.6875}


@pytest.fixture(scope="session")
def moe_model(native_build, tmp_path_factory):
    from veclut import synth

    base = tmp_path_factory.mktemp("moe") / "moe-f16.gguf"
    synth.write_base(base, MOE, seed=3)
    return lambda type_name: synth.ensure_type(native_build.bin_dir, base, type_name, "q8_0", "q8_0")


def _veclut_buffer_mib(log: str) -> float:
    return sum(float(s) for s in re.findall(r"CPU_VECLUT model buffer size =\s*([\d.]+) MiB", log))


@pytest.mark.parametrize("ours, theirs", [("I2_V", "TQ2_0"), ("I1_V", "TQ1_0")])
def test_mixture_of_experts_matches_upstream(native_build, moe_model, ours, theirs):
    result = compare(native_build.bin_dir, moe_model(theirs), moe_model(ours), TEXT, ctx=128,
                     base_env=UPSTREAM_KERNELS, extra=("--chunks", "8", "-v"))
    failed = [row for row in logit_rows(f"MoE {ours}", result) if not row["pass"]]
    assert not failed, failed
    # the expert stacks were placed in veclut's buffer, so MUL_MAT_ID ran on veclut's kernels
    experts_mib = MOE["layers"] * 3 * MOE["experts"] * MOE["ffn"] * MOE["hidden"] * BITS[ours] / 8 / 2**20
    assert _veclut_buffer_mib(result.log) >= experts_mib, result.log[-3000:]
