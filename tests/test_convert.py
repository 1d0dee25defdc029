"""`veclut convert` on GGUF input: lossless for ternary tensors, refusals in one sentence,
nothing left behind on failure, the input never touched."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURE, run_veclut

pytestmark = pytest.mark.build


def _ternary(rng, rows, k, scale):
    return (rng.integers(-1, 2, (rows, k)) * np.float32(scale)).astype(np.float32)


def _write(path, *, ternary_up=True):
    import gguf
    from gguf.quants import quantize

    q = gguf.GGMLQuantizationType
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", rng.normal(size=(10, 256)).astype(np.float16))
    w.add_tensor("blk.0.attn_norm.weight", np.ones(256, np.float32))
    w.add_tensor("blk.0.attn_q.weight", _ternary(rng, 512, 256, 0.0123))
    w.add_tensor("blk.0.ffn_down.weight", quantize(_ternary(rng, 256, 512, 0.5), q.TQ2_0), raw_dtype=q.TQ2_0)
    w.add_tensor("blk.0.ffn_gate.weight", quantize(_ternary(rng, 64, 768, 0.25), q.TQ1_0), raw_dtype=q.TQ1_0)
    w.add_tensor("blk.0.attn_k.weight", _ternary(rng, 64, 576, 0.125))
    up = _ternary(rng, 512, 256, 0.0625) if ternary_up else rng.normal(size=(512, 256)).astype(np.float32)
    w.add_tensor("blk.0.ffn_up.weight", up)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _values(tensor):
    from gguf.quants import dequantize

    data = tensor.data if tensor.tensor_type in (0, 1) else dequantize(tensor.data, tensor.tensor_type)
    return np.asarray(data, dtype=np.float32).reshape(-1)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("target, upstream", [("I2_V", "TQ2_0"), ("I1_V", "TQ1_0")])
def test_ternary_gguf_converts_losslessly(native_build, tmp_path, target, upstream):
    import gguf

    src = _write(tmp_path / "in.gguf")
    before = _digest(src)
    out = tmp_path / "out.gguf"
    result = run_veclut("convert", str(src), str(out), "--type", target)
    assert result.returncode == 0, result.stderr
    assert _digest(src) == before, "the input is never modified"
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(out)
    types = {t.name: t.tensor_type.name for t in b.tensors}
    assert types["blk.0.ffn_down.weight"] == target and types["blk.0.ffn_gate.weight"] == target
    assert types["blk.0.attn_q.weight"] == target and types["blk.0.ffn_up.weight"] == target
    assert types["blk.0.attn_k.weight"] == "F32", "a 576-long row keeps a type that fits"
    assert types["token_embd.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"
    assert "kept blk.0.attn_k.weight as F32: row length 576" in " ".join(result.stderr.split())
    for x, y in zip(a.tensors, b.tensors):
        if x.tensor_type.name in ("TQ2_0", "TQ1_0", "F16") or x.name.endswith("norm.weight") or x.name.endswith("attn_k.weight"):
            assert np.array_equal(_values(x), _values(y)), x.name
        else:  # ternary F32: same pattern, scale rounded to fp16
            np.testing.assert_allclose(_values(y), _values(x), rtol=2 ** -11)
    assert b.get_field("general.file_type").contents() == gguf.LlamaFileType[f"MOSTLY_{target}"]


def test_non_ternary_tensor_is_refused_by_name(native_build, tmp_path):
    src = _write(tmp_path / "in.gguf", ternary_up=False)
    out = tmp_path / "out.gguf"
    result = run_veclut("convert", str(src), str(out), "--type", "I2_V")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    message = " ".join(result.stderr.split())
    assert "tensor blk.0.ffn_up.weight (F32, 256x512) is not ternary" in message and "--ternarize" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.gguf"], "nothing is left behind"
    result = run_veclut("convert", str(src), str(out), "--type", "I2_V", "--ternarize")
    assert result.returncode == 0, result.stderr
    assert "ternarised blk.0.ffn_up.weight with the absmean rule" in " ".join(result.stderr.split())


def test_existing_output_needs_force(native_build, tmp_path):
    src = _write(tmp_path / "in.gguf")
    out = tmp_path / "out.gguf"
    out.write_text("precious")
    result = run_veclut("convert", str(src), str(out), "--type", "I2_V")
    assert result.returncode == 1 and "pass --force" in result.stderr
    assert out.read_text() == "precious"
    assert run_veclut("convert", str(src), str(out), "--type", "I2_V", "--force").returncode == 0
    assert out.read_bytes()[:4] == b"GGUF"


def _corrupt(path, how):
    """Damage a file written by _write: its metadata, or ffn_down's (TQ2_0) codes or block scales."""
    import gguf

    if how == "header":
        data = path.read_bytes()
        path.write_bytes(data[:24] + b"\xff" * 64 + data[88:])  # the first key's length becomes 2^64-1
        return
    tensor = next(t for t in gguf.GGUFReader(path, "r+").tensors if t.name == "blk.0.ffn_down.weight")
    blocks = tensor.data.reshape(-1, 66)  # TQ2_0: 64 bytes of 2-bit codes, then the fp16 scale
    if how == "codes":
        blocks[5, :4] = 0xFF  # code 3 is not a trit
    else:
        blocks[5, 64:] = 0xFF  # an fp16 NaN


@pytest.mark.parametrize("case, phrase", [
    ("same", "is the input"),
    ("missing-dir", "does not exist; create it first"),
    ("truncated", "tensor blk.0.ffn_up.weight ends at byte 1246848, past the end of the file (1241848 bytes)"),
    ("not-gguf", "is not a complete, valid GGUF file"),
    ("missing-src", "does not exist"),
    ("corrupt-header", "is not a complete, valid GGUF file"),
    ("corrupt-codes", "blk.0.ffn_down.weight (TQ2_0) holds blocks that are not ternary (invalid 2-bit codes): the source file is corrupt"),
    ("corrupt-scale", "blk.0.ffn_down.weight (TQ2_0) holds NaN or infinite values: the source file is corrupt"),
])
def test_bad_paths_and_files_are_one_sentence(native_build, tmp_path, case, phrase):
    src = _write(tmp_path / "in.gguf")
    out = tmp_path / "out.gguf"
    if case == "same":
        out = src
    elif case == "missing-dir":
        out = tmp_path / "nope" / "out.gguf"
    elif case == "truncated":
        data = src.read_bytes()
        src.write_bytes(data[: len(data) - 5000])
    elif case == "not-gguf":
        src.write_text("this is not a model\n" * 100)
    elif case == "missing-src":
        src = tmp_path / "absent.gguf"
    elif case.startswith("corrupt-"):
        _corrupt(src, case.removeprefix("corrupt-"))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_veclut("convert", str(src), str(out), "--type", "I1_V")
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr and phrase in " ".join(result.stderr.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing is left behind"


def _damage_table(path, name, dims=None, offset=None):
    """Rewrite one entry of the tensor table in place: its dimensions (ggml order) or data offset."""
    import gguf

    reader = gguf.GGUFReader(path, "r+")
    entry = next(t for t in reader.tensors if t.name == name).field
    if dims is not None:
        entry.parts[3][:] = dims
    if offset is not None:
        entry.parts[5][0] = offset
    reader.data.flush()


# Entries of the tensor table no writer makes: each is one sentence naming the tensor (without the
# checks: a ZeroDivisionError, a file written with an empty tensor, a wrapped-around offset that
# reads another tensor's bytes, or gguf-py's reshape error naming no tensor).
TABLE_DAMAGE = [
    ("blk.0.attn_q.weight", {"dims": [256, 0]}, "tensor blk.0.attn_q.weight has a dimension of 0 (shape 256x0)"),
    ("blk.0.attn_q.weight", {"dims": [0, 512]}, "tensor blk.0.attn_q.weight has a dimension of 0 (shape 0x512)"),
    ("blk.0.ffn_down.weight", {"dims": [512, 0]}, "tensor blk.0.ffn_down.weight has a dimension of 0"),
    ("blk.0.attn_q.weight", {"dims": [256, 1 << 62]}, "tensor blk.0.attn_q.weight has shape 256x4611686018427387904, "
                                                      "more elements than ggml can count"),
    ("blk.0.ffn_gate.weight", {"dims": [(1 << 64) - 256, 64]}, "tensor blk.0.ffn_gate.weight has shape "
                                                               "18446744073709551360x64, more elements than ggml can count"),
    ("blk.0.ffn_gate.weight", {"dims": [1 << 32, 1 << 31]}, "tensor blk.0.ffn_gate.weight has shape 4294967296x2147483648, "
                                                            "more elements than ggml can count"),
    ("blk.0.ffn_down.weight", {"dims": [500, 256]}, "tensor blk.0.ffn_down.weight has rows of 500 weights, not a whole "
                                                    "number of TQ2_0's 256-weight blocks"),
    ("blk.0.attn_k.weight", {"offset": (1 << 64) - 32}, "tensor blk.0.attn_k.weight ends at byte"),
    ("blk.0.attn_k.weight", {"offset": 1 << 40}, "tensor blk.0.attn_k.weight ends at byte"),
    ("blk.0.attn_k.weight", {"offset": 7}, "tensor blk.0.attn_k.weight starts at data offset 7, not a multiple"),
]


@pytest.mark.parametrize("name, damage, phrase", TABLE_DAMAGE)
def test_impossible_tensor_table_entries_are_one_sentence(native_build, tmp_path, name, damage, phrase):
    src = _write(tmp_path / "in.gguf")
    _damage_table(src, name, **damage)
    before, listing = _digest(src), sorted(p.name for p in tmp_path.iterdir())
    result = run_veclut("convert", str(src), str(tmp_path / "out.gguf"), "--type", "I1_V")
    message = " ".join(result.stderr.split())
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert phrase in message and ("damaged" in message or "truncated" in message), message
    assert len(result.stderr.strip().splitlines()) <= 3, "one sentence (wrapped), not a report"
    assert _digest(src) == before and sorted(p.name for p in tmp_path.iterdir()) == listing


def test_the_file_check_before_serving_names_the_damaged_tensor(native_build, tmp_path):
    from veclut import gguf_check
    from veclut.errors import VeclutError

    src = _write(tmp_path / "in.gguf")
    _damage_table(src, "blk.0.attn_q.weight", dims=[256, 0])
    with pytest.raises(VeclutError, match="tensor blk.0.attn_q.weight has a dimension of 0"):
        gguf_check.validate(src)


def test_a_source_that_shrinks_while_it_is_read_is_one_sentence(native_build, tmp_path):
    """The sizes are checked against the file before reading; a short read afterwards (the file
    truncated by someone else meanwhile) is still one sentence, not numpy's reshape error."""
    from veclut import convert_gguf
    from veclut.errors import VeclutError

    src = _write(tmp_path / "in.gguf")
    plan = next(p for p in convert_gguf.plan_tensors(_reader(src), _q().I2_V, _gguf()) if p.name == "blk.0.attn_q.weight")
    with open(src, "rb") as handle, pytest.raises(VeclutError, match="ends inside tensor blk.0.attn_q.weight"):
        handle.seek(0, os.SEEK_END)
        plan.src_offset = handle.tell() - 100  # as if the file had been cut 100 bytes into the tensor
        convert_gguf._read_rows(handle, plan, 0, 2, _gguf())


def _gguf():
    import gguf

    return gguf


def _q():
    return _gguf().GGMLQuantizationType


def _reader(path):
    return _gguf().GGUFReader(path)


def _read_only_runner(directory):
    """A command prefix under which `directory` is read-only. root ignores permissions, so for root
    it is bind-mounted read-only in a private mount namespace (EROFS; nothing changes outside)."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return []
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, str(directory), "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only directory as root here (unshare -m: {probe.stderr.strip()})")
    return ["unshare", "-m", "sh", "-c", script, str(directory)]


@pytest.mark.parametrize("source", ["gguf", "hf"])
def test_read_only_output_directory_is_one_sentence(native_build, tmp_path, source):
    src = _write(tmp_path / "in.gguf") if source == "gguf" else FIXTURE / "bitnet-latent"
    locked = tmp_path / "locked"
    locked.mkdir()
    prefix = _read_only_runner(locked)
    result = subprocess.run([*prefix, sys.executable, "-m", "veclut.cli", "convert", str(src), str(locked / "out.gguf"),
                             "--type", "I2_V"], capture_output=True, text=True)
    locked.chmod(0o755)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    reason = "permission denied" if prefix == [] else "the file system is read-only"
    assert f"cannot write {locked / 'out.gguf'}: {reason}; choose an output directory" in " ".join(result.stderr.split())
    assert not list(locked.iterdir())


def test_hf_layouts_of_one_model_convert_to_the_same_weights(native_build, tmp_path):
    """The fixture as latent BitnetForCausalLM and as packed quant_method: bitnet (2B-4T layout):
    the same ternary model, so veclut convert must produce the same I2_V tensors from both."""
    import gguf
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "fixtures/bitnet-shakespeare"
    outputs = {}
    for layout in ("bitnet-latent", "bitnet-packed"):
        out = tmp_path / f"{layout}.gguf"
        result = run_veclut("convert", str(fixture / layout), str(out), "--type", "I2_V")
        assert result.returncode == 0, result.stderr[-2000:]
        outputs[layout] = {t.name: t for t in gguf.GGUFReader(out).tensors}
    latent, packed = outputs["bitnet-latent"], outputs["bitnet-packed"]
    assert latent.keys() == packed.keys()
    ternary = [n for n, t in latent.items() if t.tensor_type.name == "I2_V"]
    assert len(ternary) == 4 * 7
    for name in latent:
        np.testing.assert_allclose(_values(packed[name]), _values(latent[name]), rtol=1e-3, atol=0, err_msg=name)


def test_hf_checkpoint_without_tokenizer_is_refused(native_build, tmp_path):
    import shutil
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "fixtures/bitnet-shakespeare/bitnet-latent"
    broken = tmp_path / "ckpt"
    shutil.copytree(fixture, broken)
    (broken / "tokenizer.model").unlink()
    result = run_veclut("convert", str(broken), str(tmp_path / "out.gguf"), "--type", "I2_V")
    assert result.returncode == 1 and "has no tokenizer" in result.stderr
    (broken / "config.json").write_text('{"architectures": ["NoSuchModelForCausalLM"]}')
    shutil.copy(fixture / "tokenizer.model", broken / "tokenizer.model")
    result = run_veclut("convert", str(broken), str(tmp_path / "out.gguf"), "--type", "I2_V")
    assert result.returncode == 1 and "does not support the architecture NoSuchModelForCausalLM" in result.stderr
    assert not (tmp_path / "out.gguf").exists() and not list(tmp_path.glob(".veclut-tmp-*"))


def test_q2_0_gguf_converts_losslessly_to_q2_v(native_build, tmp_path):
    """Q2_0 tensors (any row length that is a multiple of 64, e.g. SmolLM2's 576) become Q2_V with
    identical values; everything else is copied byte for byte."""
    import gguf
    from gguf.quants import dequantize

    from veclut.convert_q2 import q2_0_values

    q = gguf.GGMLQuantizationType
    rng = np.random.default_rng(4)

    def q2_0(rows, k):
        blocks = rng.integers(0, 256, (rows * k // 64, 18), dtype=np.uint8)
        blocks[:, :2] = np.float16(rng.uniform(0.01, 0.1, (rows * k // 64, 1))).view(np.uint8)
        return blocks.reshape(rows, k // 64 * 18)

    src, out = tmp_path / "in.gguf", tmp_path / "out.gguf"
    w = gguf.GGUFWriter(str(src), "llama")
    w.add_block_count(1)
    w.add_tensor("token_embd.weight", rng.normal(size=(10, 576)).astype(np.float16))
    w.add_tensor("blk.0.attn_q.weight", q2_0(576, 576), raw_dtype=q.Q2_0)
    w.add_tensor("blk.0.ffn_down.weight", q2_0(576, 1536), raw_dtype=q.Q2_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    result = run_veclut("convert", str(src), str(out), "--type", "Q2_V")
    assert result.returncode == 0, result.stderr
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(out)
    for x, y in zip(a.tensors, b.tensors):
        if x.tensor_type == q.Q2_0:
            assert y.tensor_type == q.Q2_V
            want = q2_0_values(np.asarray(x.data).reshape(-1, 18)).reshape(-1)
            assert np.array_equal(dequantize(y.data, q.Q2_V).reshape(-1), want), x.name
        else:
            assert y.tensor_type == x.tensor_type and np.array_equal(np.asarray(x.data), np.asarray(y.data))
    assert b.get_field("general.file_type").contents() == gguf.LlamaFileType.MOSTLY_Q2_V


def test_the_output_is_written_through_no_planted_symlink(native_build, tmp_path):
    """The temporary output had a name anyone could guess (.veclut-tmp-<pid>-<out>): a symlink
    planted there made the conversion overwrite its target (fails without mkstemp)."""
    from veclut.convert import run as convert

    src = _write(tmp_path / "in.gguf")
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    out = tmp_path / "out.gguf"
    (tmp_path / f".veclut-tmp-{os.getpid()}-{out.name}").symlink_to(victim)
    convert(src, out, "I2_V")
    assert victim.read_text() == "keep me\n"
    assert out.read_bytes()[:4] == b"GGUF" and not out.is_symlink()
