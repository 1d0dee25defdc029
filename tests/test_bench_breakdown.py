"""`veclut bench e2e --breakdown`: perf's samples sorted into a layer's operations, for veclut's,
upstream's and ik_llama.cpp's symbols (as perf names them in each), and the report's table."""

import pytest

from veclut import bench_profile
from veclut.bench_report import markdown
from veclut.cli import main
from veclut.errors import VeclutError

# symbols perf reported for llama-bench runs of each runtime (dso|symbol) -> their operation
SEEN = {
    "libggml-cpu.so.0.25.3|[.] veclut::x86::avx2_dot_nibbles": "ternary matmul",
    "libggml-cpu.so.0.25.3|[.] veclut::matmul_traits::compute_forward": "ternary matmul",
    "libggml-cpu.so.0.25.3|[.] veclut::x86::quantize_q8_K": "activation quantization",
    "libggml-cpu.so.0.25.3|[.] veclut::repack_rows": "model loading",
    "libggml-base.so.0.25.3|[.] veclut_i2_v_to_trits": "model loading",
    "libggml-cpu.so.0.25.3|[.] ggml_vec_dot_q6_K_q8_K": "output head and other quantized matmuls",
    "libggml-cpu.so.0.25.3|[.] ggml_compute_forward_flash_attn_ext": "attention",
    "libggml-cpu.so.0.25.3|[.] veclut::attention_traits::compute_forward": "attention",
    "libggml-cpu.so.0.25.3|[.] veclut::attend_row": "attention",
    "libggml-cpu.so.0.25.3|[.] veclut::attend_tile": "attention",
    "libggml-cpu.so.0.25.3|[.] ggml_compute_forward_rms_norm": "norms and element-wise ops",
    "libggml-cpu.so.0.25.3|[.] ggml_barrier": "threads waiting (OpenMP spin, barriers)",
    "libgomp.so.1.0.0|[.] 0x000000000001f7da": "threads waiting (OpenMP spin, barriers)",
    "llama-bench|[.] (anonymous namespace)::mul_mat_iq2_bn_r4_q8_k16<1>": "ternary matmul",
    "llama-bench|[.] (anonymous namespace)::mul_mat_iq1bn_q8_K64<4>": "ternary matmul",
    "llama-bench|[.] (anonymous namespace)::mul_mat_qY_K_q8_2_X4_T<(anonymous namespace)::DequantizerQ6K_AVX2, 1>":
        "output head and other quantized matmuls",
    "llama-bench|[.] (anonymous namespace)::FlashQKV<96, 1, 128>::accumulate_qkv_1<(anonymous namespace)::HelperF16>":
        "attention",
    "llama-bench|[.] quantize_row_q8_K16": "activation quantization",
    "[kernel.kallsyms]|[k] _raw_spin_unlock_irqrestore": "kernel (page faults, scheduling)",
    "libc.so.6|[.] __memset_avx2_unaligned_erms": "other",
}


@pytest.mark.parametrize("key, operation", SEEN.items())
def test_each_runtime_s_symbols_land_in_their_operation(key, operation):
    dso, symbol = key.split("|", 1)
    assert bench_profile.classify(dso, symbol) == operation


PERF_REPORT = """
 70.00% |libgomp.so.1.0.0      |[.] 0x000000000001f7da
 5.61%  |libggml-cpu.so.0.25.3 |[.] veclut::x86::avx2_dot_nibbles
 2.94%  |libggml-cpu.so.0.25.3 |[.] veclut::repack_rows
 1.64%  |libggml-cpu.so.0.25.3 |[.] ggml_vec_dot_q6_K_q8_K
 1.49%  |libgomp.so.1.0.0      |[.] 0x000000000001f7de
 0.50%  |libggml-cpu.so.0.25.3 |[.] veclut::matmul_traits::compute_forward
# a comment line perf may print
"""


def test_shares_add_up_per_operation():
    got = bench_profile.shares(PERF_REPORT)
    assert got == pytest.approx({"threads waiting (OpenMP spin, barriers)": 0.7149, "ternary matmul": 0.0611,
                                 "model loading": 0.0294, "output head and other quantized matmuls": 0.0164})


def test_without_perf_the_breakdown_is_refused_in_one_sentence(monkeypatch):
    monkeypatch.setattr(bench_profile.shutil, "which", lambda name: None)
    with pytest.raises(VeclutError, match=r"needs perf, which is not installed; install it \(Debian: `apt-get install linux-perf`\)"):
        bench_profile.require_perf()


def test_a_breakdown_of_gemm_is_refused_before_measuring(capsys):
    assert main(["bench", "gemm", "--breakdown"]) == 1
    assert "--breakdown breaks down end-to-end runs" in capsys.readouterr().err


def test_the_phases_profiled_are_prefill_only_and_decode_only(tmp_path):
    phases = bench_profile.llama_bench_phases(tmp_path / "llama-bench", tmp_path / "m.gguf",
                                              {"threads": 2, "prompt": 512, "gen": 128}, ("-fa", "0"))
    assert list(phases) == ["pp512", "tg128"]
    assert phases["pp512"][-4:] == ["-p", "512", "-n", "0"] and phases["tg128"][-4:] == ["-p", "0", "-n", "128"]
    assert all("-fa" in cmd and cmd[cmd.index("-t") + 1] == "2" for cmd in phases.values())


def test_the_report_tables_the_operations_of_each_run():
    machine = {"cpu": "CPU X", "cores": 2, "features": ["AVX2"], "profile": "native", "kernels": "avx2",
               "veclut_commit": "abc", "llama_cpp_commit": "0c1e", "date": "today"}
    breakdown = [{"suite": "s", "type": "I2_V", "test": "tg128", "threads": 2,
                  "shares": {"ternary matmul": 0.6, "attention": 0.12, "other": 0.001}},
                 {"suite": "s", "type": "ik:IQ2_BN_R4", "test": "tg128", "threads": 2,
                  "error": "perf record failed on ik:IQ2_BN_R4 tg128 (no permission)"}]
    text = markdown({"machine": machine, "command": "veclut bench e2e --breakdown", "breakdown": breakdown}, [])
    assert "| operation | I2_V tg128 | ik:IQ2_BN_R4 tg128 |" in text
    assert "| ternary matmul | 60.0 % | — |" in text and "| attention | 12.0 % | — |" in text
    assert "| other |" not in text, "operations below half a percent everywhere are left out"
    assert "- ik:IQ2_BN_R4 tg128: perf record failed on ik:IQ2_BN_R4 tg128 (no permission)" in text
