"""The new types in every place of the stack: C reference == numpy reference, gguf-dump names
them, llama-quantize offers them, and the ids agree everywhere."""

import ctypes
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.build

ROOT = Path(__file__).resolve().parents[1]
TYPES = {"I2_V": 80, "I1_V": 81, "Q2_V": 82}


def _header_ids() -> dict[str, int]:
    text = (ROOT / "ggml_ext/include/veclut-types.h").read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"#define VECLUT_TYPE_(\w+) (\d+)", text)}


def test_ids_agree_with_the_one_definition(native_build):
    import gguf

    header = _header_ids()
    assert header == TYPES
    for name, value in header.items():
        assert gguf.GGMLQuantizationType[name] == value
        assert gguf.LlamaFileType[f"MOSTLY_{name}"] == value
    upstream_max = max(t.value for t in gguf.GGMLQuantizationType if t.name not in TYPES)
    forbidden = [range(36, 48), range(97, 100), range(133, 159), range(202, 234), range(335, 400)]
    for value in header.values():
        assert value > upstream_max
        assert not any(value in r for r in forbidden)


def _c_lib(native_build):
    lib = ctypes.CDLL(str(native_build.bin_dir / "libggml-base.so"))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    return lib


def _blocks(kind: str, rng) -> np.ndarray:
    if kind == "ternary":
        scales = np.float16(rng.uniform(0.01, 1, (8, 1))).astype(np.float32)
        return (rng.integers(-1, 2, (8, 512)) * scales).astype(np.float32)
    if kind == "ties":  # values exactly halfway between trits after scaling
        x = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], (8, 512)).astype(np.float32)
        x[:, ::256] = 1.0
        return x
    if kind == "zeros":
        return np.zeros((4, 256), dtype=np.float32)
    if kind == "gptq":  # asymmetric INT2: fp16 scale, integer zero point 0..3 per 64-group
        scales = np.float16(rng.uniform(1e-3, 0.1, (8, 12, 1))).astype(np.float32)
        zeros = rng.integers(0, 4, (8, 12, 1)).astype(np.float32)
        levels = rng.integers(0, 4, (8, 12, 64)).astype(np.float32)
        levels[:4, :, :] = np.minimum(levels[:4], 2)  # groups that use only some of the levels
        return (scales * (levels - zeros)).reshape(8, 768).astype(np.float32)
    if kind == "shifted":  # blocks far from zero and blocks with signed zeros
        x = rng.normal(5, 0.1, (8, 768)).astype(np.float32)
        x[:, :64] = rng.choice([-0.0, 0.0, 1.0], (8, 64))
        return x
    if kind == "real":  # latent weights of the project's fixture model
        from safetensors.numpy import load_file

        weights = load_file(str(ROOT / "fixtures/bitnet-shakespeare/bitnet-latent/model.safetensors"))
        return weights["model.layers.0.mlp.down_proj.weight"][:64].astype(np.float32)
    return rng.normal(0, 1, (8, 768)).astype(np.float32)


KINDS = {"I2_V": ["ternary", "ties", "zeros", "normal"], "I1_V": ["ternary", "ties", "zeros", "normal"],
         "Q2_V": ["ternary", "ties", "zeros", "normal", "gptq", "shifted", "real"]}


@pytest.mark.parametrize("name, kind", [(name, kind) for name in sorted(TYPES) for kind in KINDS[name]])
def test_numpy_reference_is_bit_exact_with_c(native_build, name, kind):
    import gguf
    from gguf.quants import dequantize, quantize

    qtype = gguf.GGMLQuantizationType[name]
    x = np.ascontiguousarray(_blocks(kind, np.random.default_rng(7)))
    rows, k = x.shape
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    c_bytes = np.zeros((rows, k // block * size), dtype=np.uint8)
    written = _c_lib(native_build).ggml_quantize_chunk(TYPES[name], x.ctypes.data, c_bytes.ctypes.data, 0, rows, k, None)
    assert written == c_bytes.nbytes
    np_bytes = quantize(x, qtype)
    assert np.array_equal(np_bytes, c_bytes), "numpy and C quantize to different bytes"

    lib = ctypes.CDLL(str(native_build.bin_dir / "libggml-base.so"))
    deq = getattr(lib, f"veclut_dequantize_row_{name.lower()}")
    c_values = np.zeros_like(x)
    for r in range(rows):
        deq(ctypes.c_void_p(c_bytes[r].ctypes.data), ctypes.c_void_p(c_values[r].ctypes.data), ctypes.c_int64(k))
    assert np.array_equal(dequantize(np_bytes, qtype), c_values)
    if kind in ("ternary", "zeros", "gptq"):
        assert np.array_equal(c_values, x), "input on the type's grid with an fp16 scale is kept exactly"


@pytest.mark.parametrize("name, upstream", [("I2_V", "TQ2_0"), ("I1_V", "TQ1_0")])
def test_upstream_ternary_types_convert_losslessly(native_build, name, upstream):
    import gguf
    from gguf.quants import dequantize, quantize

    x = _blocks("ternary", np.random.default_rng(3))
    up = dequantize(quantize(x, gguf.GGMLQuantizationType[upstream]), gguf.GGMLQuantizationType[upstream])
    ours = dequantize(quantize(up, gguf.GGMLQuantizationType[name]), gguf.GGMLQuantizationType[name])
    assert np.array_equal(up, x) and np.array_equal(ours, up)


def _c_quantize(lib, type_id: int, x: np.ndarray, imatrix: np.ndarray | None = None) -> np.ndarray:
    rows, k = x.shape
    size = {42: 18, 82: 20}[type_id]
    out = np.zeros((rows, k // 64 * size), dtype=np.uint8)
    lib.ggml_quantize_chunk(type_id, x.ctypes.data, out.ctypes.data, 0, rows, k,
                            None if imatrix is None else imatrix.ctypes.data)
    return out


def _c_dequantize(lib, name: str, q: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((q.shape[0], k), dtype=np.float32)
    for r in range(q.shape[0]):
        getattr(lib, name)(ctypes.c_void_p(q[r].ctypes.data), ctypes.c_void_p(out[r].ctypes.data), ctypes.c_int64(k))
    return out


def test_q2_0_converts_losslessly_to_q2_v(native_build):
    """Every Q2_0 block is a Q2_V block (same codes, o = -1): quantizing Q2_0's values to Q2_V
    finds them exactly, and so does the load-time repack (C: veclut_q2_v_from_q2_0)."""
    lib = _c_lib(native_build)
    x = np.ascontiguousarray(_blocks("normal", np.random.default_rng(5)))
    q2_0 = _c_quantize(lib, 42, x)
    values = _c_dequantize(lib, "dequantize_row_q2_0", q2_0, x.shape[1])
    again = _c_dequantize(lib, "veclut_dequantize_row_q2_v", _c_quantize(lib, 82, values), x.shape[1])
    assert np.array_equal(again, values)
    repacked = np.zeros((x.shape[0], x.shape[1] // 64 * 20), dtype=np.uint8)
    for r in range(x.shape[0]):
        for b in range(x.shape[1] // 64):
            lib.veclut_q2_v_from_q2_0(ctypes.c_void_p(q2_0[r, b * 18:].ctypes.data),
                                      ctypes.c_void_p(repacked[r, b * 20:].ctypes.data))
    assert np.array_equal(_c_dequantize(lib, "veclut_dequantize_row_q2_v", repacked, x.shape[1]), values)


@pytest.mark.parametrize("kind", ["normal", "real"])
def test_q2_v_error_is_no_worse_than_q2_0(native_build, kind):
    """Per block (Q2_0's levels are one of Q2_V's candidates), and with an importance matrix
    the weighted error is no worse than without one."""
    lib = _c_lib(native_build)
    x = np.ascontiguousarray(_blocks(kind, np.random.default_rng(11)))
    k = x.shape[1]
    err_q2_0 = (_c_dequantize(lib, "dequantize_row_q2_0", _c_quantize(lib, 42, x), k) - x) ** 2
    err_q2_v = (_c_dequantize(lib, "veclut_dequantize_row_q2_v", _c_quantize(lib, 82, x), k) - x) ** 2
    per_block = lambda e: e.reshape(-1, 64).sum(axis=1)  # noqa: E731
    assert np.all(per_block(err_q2_v) <= per_block(err_q2_0) * (1 + 1e-6))
    assert err_q2_v.sum() < 0.5 * err_q2_0.sum()

    imatrix = np.ascontiguousarray(np.random.default_rng(2).uniform(0, 10, k).astype(np.float32))
    weighted = _c_dequantize(lib, "veclut_dequantize_row_q2_v", _c_quantize(lib, 82, x, imatrix), k)
    assert ((weighted - x) ** 2 * imatrix).sum() < (err_q2_v * imatrix).sum()


def test_gguf_dump_names_the_types(native_build, tmp_path):
    import gguf
    from gguf.quants import quantize

    path = tmp_path / "types.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    x = _blocks("ternary", np.random.default_rng(1))
    for name in TYPES:
        qtype = gguf.GGMLQuantizationType[name]
        writer.add_tensor(f"w.{name.lower()}", quantize(x, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    dump = subprocess.run([sys.executable, "-m", "gguf.scripts.gguf_dump", str(path)], capture_output=True, text=True)
    assert dump.returncode == 0, dump.stderr
    assert all(name in dump.stdout for name in TYPES)


def test_llama_quantize_offers_the_types(native_build):
    result = subprocess.run([str(native_build.bin_dir / "llama-quantize"), "--help"], capture_output=True, text=True)
    for name, value in TYPES.items():
        assert re.search(rf"\b{value}\s+or\s+{name}\b", result.stdout), result.stdout
