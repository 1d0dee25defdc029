"""`veclut convert` streams: its peak memory does not grow with the model. Synthetic TQ2_0 models
of Llama3-8B's shapes (veclut.synth.write_quantized: random ternary blocks, Q4_0 embedding and
output) are converted to I2_V by the CLI in a subprocess, and the subprocess's peak RSS is read
from getrusage(RUSAGE_CHILDREN) in a wrapper process of its own (so nothing else pytest ran
counts).

Measured on the 2-core machine: peak RSS 414 MiB for 1 and 2 layers, 415 MiB for all 32 layers
(8.03 billion parameters, a 2.2 GiB file; 334 s to convert with the machine under a load of 9,
so that test runs with --full). Almost all of it is the GGUF reader's parse of the
128,256-token vocabulary (about 340 MiB) and numpy; the conversion works on 8 MiB of rows at a
time (CHUNK_BYTES). The always-on test converts a 1- and a 2-layer model, every tensor at its
real 8B size, and asserts that
- the extra layer (57 MB of TQ2_0) adds less than 32 MiB of peak RSS: nothing accumulates;
- the peak stays under 640 MiB: converting a whole 14336x4096 matrix at once (CHUNK_BYTES set
  to 1 GiB by hand) peaks at 1,075 MiB, so tensors are streamed too."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT

pytestmark = pytest.mark.build

LLAMA3_8B = {"arch": "llama", "hidden": 4096, "ffn": 14336, "layers": 32, "heads": 32, "kv_heads": 8, "vocab": 128256}
MIB, GIB = 1 << 20, 1 << 30
MAX_GROWTH, MAX_PEAK_ONE_LAYER = 32 * MIB, 640 * MIB
_WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print('peak-rss-kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")


def _convert_peak_rss(src: Path, out: Path) -> int:
    """Bytes of peak RSS of `veclut convert src out --type I2_V`, run as a user would."""
    result = subprocess.run([sys.executable, "-c", _WRAPPER, sys.executable, "-m", "veclut.cli", "convert", str(src),
                             str(out), "--type", "I2_V"], capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(re.search(r"peak-rss-kib (\d+)", result.stdout)[1]) * 1024


def _model(tmp_path: Path, layers: int) -> Path:
    from veclut.synth import write_quantized

    src = tmp_path / f"llama3-8b-shape-{layers}-layers-tq2_0.gguf"
    write_quantized(src, {**LLAMA3_8B, "layers": layers}, seed=0)
    return src


def test_shape_is_llama3_8b():
    from veclut.synth import _tensors

    suite = yaml.safe_load((ROOT / "configs/bench/llama3-8b-1.58.yaml").read_text())
    h, f = LLAMA3_8B["hidden"], LLAMA3_8B["ffn"]
    assert {f"{h}x{h}", f"{f}x{h}", f"{h}x{f}"} == set(suite["gemm_shapes"])
    parameters = sum(int(np.prod(shape)) for _, shape, _ in _tensors(LLAMA3_8B))
    assert 8.0e9 < parameters < 8.1e9


def test_peak_memory_does_not_grow_with_layers(native_build, tmp_path):
    import gguf

    peaks = {}
    for layers in (1, 2):
        src, out = _model(tmp_path, layers), tmp_path / f"{layers}-i2_v.gguf"
        peaks[layers] = _convert_peak_rss(src, out)
        if layers == 2:  # the synthetic model is a real TQ2_0 model: I2_V holds the same values
            a = {t.name: t for t in gguf.GGUFReader(src).tensors}
            b = {t.name: t for t in gguf.GGUFReader(out).tensors}
            assert sum(t.tensor_type.name == "I2_V" for t in b.values()) == 2 * 7
            for name in ("blk.1.attn_k.weight", "blk.1.ffn_down.weight"):
                assert np.array_equal(gguf.quants.dequantize(a[name].data, a[name].tensor_type),
                                      gguf.quants.dequantize(b[name].data, b[name].tensor_type)), name
        src.unlink()
        out.unlink()
    growth = peaks[2] - peaks[1]
    assert growth < MAX_GROWTH, f"one more 8B-sized layer added {growth / MIB:.0f} MiB of peak RSS ({peaks})"
    assert max(peaks.values()) < MAX_PEAK_ONE_LAYER, f"peak RSS {peaks}: whole tensors are held in memory"


@pytest.mark.slow
def test_8b_parameter_model_converts_within_2_gib(native_build, tmp_path):
    src = _model(tmp_path, LLAMA3_8B["layers"])
    out = tmp_path / "8b-i2_v.gguf"
    try:
        peak = _convert_peak_rss(src, out)
        assert out.stat().st_size > 2 * GIB
    finally:
        src.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
    assert peak <= 2 * GIB, f"peak RSS {peak / MIB:.0f} MiB"
