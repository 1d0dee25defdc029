"""`veclut convert` on GGUFs of other runtimes: bitnet.cpp's I2_S, ik_llama.cpp's IQ1_BN, IQ2_BN,
IQ2_BN_R4. The files are written by tests/foreign_gguf.py (this project's writer of those
layouts, checked against ik's own files in tests/test_foreign_types.py); the converted files are
checked value by value, as a model against the same model converted from F32, and bad input is
refused in one sentence naming the tensor."""

import os
from pathlib import Path

import numpy as np
import pytest

import foreign_gguf
from conftest import FIXTURE, run_veclut

pytestmark = pytest.mark.build

FOREIGN = ["I2_S", "IQ1_BN", "IQ2_BN", "IQ2_BN_R4"]
TARGETS = ["I2_V", "I1_V", "TQ2_0", "TQ1_0"]


def _ternary(rng, rows, k, per_row):
    trits = rng.integers(-1, 2, (rows, k)).astype(np.int8)
    scales = np.float16(rng.uniform(0.01, 0.5, rows if per_row else 1)).astype(np.float32)
    return trits * np.broadcast_to(scales.reshape(-1, 1), (rows, 1))


def _model(path, type_name, *, arch="llama", fields=(), tamper=None, scale=None, tensors=None):
    """A one-block model: F16 embedding, an F32 norm, and linear weights in `type_name`: two whose
    rows fit a 256-block, one of 576 (Q2_0 takes it) and for I2_S one of 160 (only F32 does).
    Returns {name: the values the source format defines}. `tamper(name, bytes)` may change a
    tensor's bytes; `tensors` (name -> type id) may declare another type id."""
    import gguf

    rng = np.random.default_rng(7)
    per_row = type_name != "I2_S"
    weights = {"blk.0.attn_q.weight": _ternary(rng, 512, 256, per_row),
               "blk.0.ffn_down.weight": _ternary(rng, 256, 512, per_row),
               "blk.0.ffn_up.weight": _ternary(rng, 64, 576, per_row)}
    if type_name == "I2_S":
        weights["blk.0.ffn_gate.weight"] = _ternary(rng, 4, 160, per_row)
    if scale is not None:
        weights["blk.0.attn_q.weight"] = np.sign(weights["blk.0.attn_q.weight"]) * np.float32(scale)
    f16 = gguf.GGMLQuantizationType.F16
    rows = [("token_embd.weight", (10, 256), int(f16), rng.normal(size=(10, 256)).astype(np.float16).view(np.uint8)),
            ("blk.0.attn_norm.weight", (256,), 0, np.ones(256, np.float32).view(np.uint8))]
    for name, values in weights.items():
        data = foreign_gguf.foreign_bytes(type_name, values)
        if tamper:
            data = tamper(name, data.copy())
        tid = (tensors or {}).get(name, foreign_gguf.type_id(type_name))
        rows.append((name, values.shape, tid, data))
    base = [(f"{arch}.block_count", 1, gguf.GGUFValueType.UINT32, None),
            ("general.file_type", 137, gguf.GGUFValueType.UINT32, None)]
    foreign_gguf.write(path, arch, base + list(fields), rows)
    return weights


def _values(tensor):
    import gguf
    from gguf.quants import dequantize

    from veclut.convert_q2 import q2_0_values

    q = gguf.GGMLQuantizationType
    k = int(tensor.shape[0])
    if tensor.tensor_type in (q.F32, q.F16):
        return np.asarray(tensor.data, dtype=np.float32).reshape(-1, k)
    if tensor.tensor_type == q.Q2_0:
        return q2_0_values(np.asarray(tensor.data).reshape(-1, 18)).reshape(-1, k)
    return dequantize(tensor.data, tensor.tensor_type).reshape(-1, k)


def _message(result) -> str:
    return " ".join(result.stderr.split())


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("type_name", FOREIGN)
def test_foreign_tensors_convert_value_by_value(native_build, tmp_path, type_name, target):
    import gguf

    src, out = tmp_path / "in.gguf", tmp_path / "out.gguf"
    weights = _model(src, type_name)
    before = src.read_bytes()
    result = run_veclut("convert", str(src), str(out), "--type", target)
    assert result.returncode == 0, result.stderr
    assert src.read_bytes() == before, "the input is never modified"
    reader = gguf.GGUFReader(out)
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == target and types["blk.0.ffn_down.weight"] == target
    assert types["blk.0.ffn_up.weight"] == "Q2_0", "a 576-long row goes to the 64-weight ternary type"
    assert types.get("blk.0.ffn_gate.weight", "F32") == "F32", "a 160-long row (I2_S only) goes to F32"
    assert types["token_embd.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"
    for t in reader.tensors:
        if t.name in weights:
            assert np.array_equal(_values(t), weights[t.name]), f"{t.name} changed its values"
    message = _message(result)
    assert f"stored blk.0.ffn_up.weight ({type_name}) as Q2_0: row length 576 is not a multiple of {target}'s " \
           "256-weight block; Q2_0's 64-weight blocks hold the same ternary values" in message
    assert "dequantized values identical" in result.stdout and "rounded" not in message
    assert reader.get_field("general.file_type").contents() == gguf.LlamaFileType[f"MOSTLY_{target}"]


def test_float32_scales_are_rounded_to_fp16_and_said(native_build, tmp_path):
    """IQ2_BN keeps a float32 scale per row; I2_V an fp16 one per block: the ternary pattern stays,
    the scale moves by at most fp16's rounding, and the summary says by how much."""
    import gguf

    src, out = tmp_path / "in.gguf", tmp_path / "out.gguf"
    weights = _model(src, "IQ2_BN", scale=0.0123456789)
    result = run_veclut("convert", str(src), str(out), "--type", "I2_V")
    assert result.returncode == 0, result.stderr
    q = next(t for t in gguf.GGUFReader(out).tensors if t.name == "blk.0.attn_q.weight")
    want = weights["blk.0.attn_q.weight"]
    got = _values(q)
    assert np.array_equal(np.sign(got), np.sign(want))
    change = float(np.max(np.abs(got - want)) / 0.0123456789)
    assert 0 < change <= 2.0 ** -11
    assert f"block scales were rounded to fp16 (largest relative change {change:.2e})" in _message(result)


def _set_type_id(tid):
    return {"tensors": {"blk.0.attn_q.weight": tid}}


def _tamper(what):
    def change(name, data):
        if name == "blk.0.attn_q.weight":
            if what == "nan":
                data[3 * 68: 3 * 68 + 4] = np.array([np.nan], dtype=np.float32).view(np.uint8)  # row 3's scale
            else:
                data[4 + 10] |= 0b11  # a 2-bit code 3
        return data
    return {"tamper": change}


@pytest.mark.parametrize("case, source_type, options, phrase", [
    ("wrong id for the size", "IQ1_BN", _set_type_id(135),
     "tensor blk.0.attn_q.weight is declared IQ2_BN (type id 135), which needs 34816 bytes for 256x512 weights, "
     "but 27648 bytes lie before the next tensor: the type id does not match the data"),
    ("unknown id", "IQ2_BN", _set_type_id(139),
     "tensor blk.0.attn_q.weight has type id 139, which veclut convert does not read: it reads the pinned llama.cpp's "
     "types and the ternary types I2_S (36, bitnet.cpp), IQ1_BN (134, ik_llama.cpp), IQ2_BN (135, ik_llama.cpp), "
     "IQ2_BN_R4 (335, ik_llama.cpp)"),
    ("NaN scale", "IQ2_BN", _tamper("nan"),
     "tensor blk.0.attn_q.weight (IQ2_BN) holds a NaN or infinite scale (row 3): the source file is corrupt"),
    ("code 3", "IQ2_BN", _tamper("code"),
     "tensor blk.0.attn_q.weight (IQ2_BN) holds 2-bit code 3, which is not a ternary value: the source file is corrupt"),
    ("truncated", "IQ1_BN", {},
     "is truncated (tensor blk.0.ffn_up.weight ends past the end of the file)"),
    ("scale beyond fp16", "IQ2_BN", {"scale": 1e6},
     "tensor blk.0.attn_q.weight (IQ2_BN) has the scale 1e+06 in row 0, which fp16 cannot hold"),
])
def test_bad_foreign_input_is_one_sentence(native_build, tmp_path, case, source_type, options, phrase):
    src, out = tmp_path / "in.gguf", tmp_path / "out.gguf"
    _model(src, source_type, **options)
    if case == "truncated":
        data = src.read_bytes()
        src.write_bytes(data[: len(data) - 1000])
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_veclut("convert", str(src), str(out), "--type", "I2_V")
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr and phrase in _message(result), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing is left behind"


def test_bitnet_cpp_architecture_is_mapped_and_said(native_build, tmp_path):
    import gguf

    src, out = tmp_path / "in.gguf", tmp_path / "out.gguf"
    fields = [("bitnet-b1.58.context_length", 4096, gguf.GGUFValueType.UINT32, None),
              ("bitnet-b1.58.rope.freq_base", 500000.0, gguf.GGUFValueType.FLOAT32, None),
              ("tokenizer.ggml.pre", "llama-bpe", gguf.GGUFValueType.STRING, None)]
    _model(src, "I2_S", arch="bitnet-b1.58", fields=fields)
    result = run_veclut("convert", str(src), str(out), "--type", "I2_V")
    assert result.returncode == 0, result.stderr
    reader = gguf.GGUFReader(out)
    keys = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert keys["general.architecture"] == "bitnet" and keys["bitnet.hidden_activation"] == "relu2"
    assert keys["bitnet.context_length"] == 4096 and keys["bitnet.rope.freq_base"] == 500000.0
    assert keys["bitnet.block_count"] == 1 and keys["tokenizer.ggml.pre"] == "llama-bpe"
    assert not [k for k in keys if k.startswith("bitnet-b1.58")]
    assert ("mapped architecture bitnet-b1.58 (bitnet.cpp, ik_llama.cpp) to the pinned llama.cpp's bitnet, "
            "bitnet.hidden_activation = relu2; renamed 3 keys bitnet-b1.58.* to bitnet.*") in _message(result)


@pytest.mark.parametrize("name, shape", [("output.weight", (10, 256)), ("blk.0.attn_q.bias", (256,))])
def test_mapped_architecture_with_tensors_bitnet_does_not_load_is_refused(native_build, tmp_path, name, shape):
    """ik's bitnet-b1.58 graph takes an untied output, RoPE factors and biases; the pinned bitnet
    graph none of them, and llama.cpp refuses a file with tensors it does not load."""
    import gguf

    src = tmp_path / "in.gguf"
    foreign_gguf.write(src, "bitnet-25", [("bitnet-25.block_count", 1, gguf.GGUFValueType.UINT32, None)],
                       [(name, shape, 1, np.zeros(shape, np.float16).view(np.uint8))])
    result = run_veclut("convert", str(src), str(tmp_path / "out.gguf"), "--type", "I2_V")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (f"the bitnet-25 model has {name}, which the pinned llama.cpp's bitnet graph does not take (it ties the "
            "output to token_embd.weight and has no RoPE factors and no biases); veclut cannot map this model") in _message(result)
    assert not (tmp_path / "out.gguf").exists()


# --- the fixture model in each foreign format, against the same model from F32 -------------------

@pytest.fixture(scope="module")
def from_f32(native_build, f32_model, tmp_path_factory):
    """The fixture's F32 GGUF converted by veclut directly, once per target type."""
    made = {}

    def get(target):
        if target not in made:
            out = tmp_path_factory.mktemp("f32route") / f"fixture-{target}.gguf"
            result = run_veclut("convert", str(f32_model), str(out), "--type", target)
            assert result.returncode == 0, result.stderr
            made[target] = out
        return made[target]

    return get


# KLD of the converted fixture against its F32 GGUF (llama-perplexity, 8 chunks of 256): the
# same numbers as the F32 route's own I2_V / I1_V, since the tensors are byte for byte those.
KLD_LIMIT, SAME_TOP = 5e-4, 0.98


@pytest.mark.parametrize("type_name, target", [("I2_S", "I2_V"), ("IQ1_BN", "I1_V"), ("IQ2_BN", "I2_V"),
                                               ("IQ2_BN_R4", "I1_V"), ("IQ2_BN", "TQ2_0"), ("IQ1_BN", "TQ1_0")])
def test_fixture_in_a_foreign_format_converts_to_the_f32_route_model(native_build, f32_model, from_f32, tmp_path,
                                                                    type_name, target):
    import gguf

    from veclut.logits import compare

    src, out = tmp_path / f"fixture-{type_name}.gguf", tmp_path / f"out-{target}.gguf"
    foreign = foreign_gguf.copy_as(f32_model, src, type_name)
    assert len(foreign) == 4 * 7
    result = run_veclut("convert", str(src), str(out), "--type", target)
    assert result.returncode == 0, result.stderr
    direct = {t.name: t for t in gguf.GGUFReader(from_f32(target)).tensors}
    for t in gguf.GGUFReader(out).tensors:
        assert t.tensor_type == direct[t.name].tensor_type, t.name
        assert np.array_equal(np.asarray(t.data), np.asarray(direct[t.name].data)), f"{t.name} differs from the F32 route"
    # upstream's own TQ kernels for the TQ types: the output is a file plain llama.cpp runs
    env = {"VECLUT_NO_UPSTREAM": "1"} if target.startswith("TQ") else {}
    d = compare(native_build.bin_dir, f32_model, out, FIXTURE / "heldout.txt", extra=("--chunks", "8"), test_env=env)
    assert d.kld <= KLD_LIMIT and d.same_top >= SAME_TOP, f"{type_name} -> {target}: {d}"


def test_bitnet_b158_file_runs_with_squared_relu(native_build, f32_model, tmp_path):
    """A bitnet.cpp-style file (architecture bitnet-b1.58, I2_S) converts to the pinned bitnet graph
    with squared ReLU (patch 0008): its logits are those of the F32 model given hidden_activation
    relu2, and far from the same weights run with SiLU (so the key is what makes the difference)."""
    from veclut.logits import compare

    src, out = tmp_path / "bitnet-b158-i2_s.gguf", tmp_path / "out.gguf"
    foreign_gguf.copy_as(f32_model, src, "I2_S", arch="bitnet-b1.58")
    relu2 = tmp_path / "f32-relu2.gguf"
    foreign_gguf.copy_as(f32_model, relu2, add=[("bitnet.hidden_activation", "relu2")])
    result = run_veclut("convert", str(src), str(out), "--type", "I2_V")
    assert result.returncode == 0, result.stderr
    text, extra = FIXTURE / "heldout.txt", ("--chunks", "8")
    same = compare(native_build.bin_dir, relu2, out, text, extra=extra)
    other = compare(native_build.bin_dir, f32_model, out, text, extra=extra)
    assert same.kld <= KLD_LIMIT and same.same_top >= SAME_TOP, same
    assert other.kld > 100 * max(same.kld, 1e-6), f"SiLU and squared ReLU gave the same logits: {other} vs {same}"


def _ik_files():
    from veclut.paths import cache_dir

    return sorted(cache_dir().glob("models/smoke-*/ik-*.gguf"))


@pytest.mark.skipif(not _ik_files(), reason="no ik_llama.cpp files in the cache (`veclut bench e2e --peer ik_llama` makes them)")
@pytest.mark.parametrize("path", _ik_files(), ids=lambda p: p.name)
def test_files_written_by_ik_llama_cpp_convert_to_their_f16_source(native_build, tmp_path, path):
    """Where ik's own llama-quantize output is at hand (the peer benchmark's models), the ternary
    tensors convert to exactly the F16 weights they were quantized from."""
    import gguf

    out = tmp_path / "out.gguf"
    result = run_veclut("convert", str(path), str(out), "--type", "I2_V")
    assert result.returncode == 0, result.stderr
    base = {t.name: t for t in gguf.GGUFReader(path.with_name("base-f16.gguf")).tensors}
    converted = [t for t in gguf.GGUFReader(out).tensors if t.tensor_type.name == "I2_V"]
    assert converted
    for t in converted:
        assert np.array_equal(_values(t).reshape(-1), np.asarray(base[t.name].data, np.float32).reshape(-1)), t.name
