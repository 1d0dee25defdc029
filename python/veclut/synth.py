"""Synthetic models of real shapes with random ternary weights, for speed measurements.

A llama-graph GGUF in F16 (ternary values, one scale per tensor, so every ternary type holds
them exactly) is generated once per suite and seed, streamed tensor by tensor; the patched
llama-quantize then makes each type from it. Both are cached."""

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np

from . import atomic, ui
from .errors import VeclutError
from .paths import cache_dir

VOCAB_SPECIAL = ("<unk>", "<s>", "</s>")


def _vocab(size: int) -> tuple[list[str], list[int]]:
    """A SentencePiece-style vocabulary: specials, the 256 byte tokens, then plain pieces."""
    tokens = list(VOCAB_SPECIAL) + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256  # unknown, control, control, byte...
    tokens += [f"\u2581t{i}" for i in range(size - len(tokens))]
    types += [1] * (size - len(types))
    return tokens, types


def _ffn(m: dict, i: int) -> list[tuple[str, tuple, str]]:
    """The feed-forward tensors of block i: dense SwiGLU, or with `experts` a mixture of experts
    (Mixtral layout: a router and 3-D stacks of expert matrices, run by MUL_MAT_ID)."""
    h, f, n = m["hidden"], m["ffn"], m.get("experts", 0)
    if not n:
        return [(f"blk.{i}.ffn_gate.weight", (f, h), "ternary"), (f"blk.{i}.ffn_up.weight", (f, h), "ternary"),
                (f"blk.{i}.ffn_down.weight", (h, f), "ternary")]
    return [(f"blk.{i}.ffn_gate_inp.weight", (n, h), "norm"),  # F32 router, as converters keep it
            (f"blk.{i}.ffn_gate_exps.weight", (n, f, h), "ternary"), (f"blk.{i}.ffn_up_exps.weight", (n, f, h), "ternary"),
            (f"blk.{i}.ffn_down_exps.weight", (n, h, f), "ternary")]


def _tensors(m: dict) -> list[tuple[str, tuple, str]]:
    """(name, numpy shape, kind) of a llama model; kind is ternary, dense or norm."""
    h, kv = m["hidden"], m["hidden"] // m["heads"] * m["kv_heads"]
    out = [("token_embd.weight", (m["vocab"], h), "dense"), ("output_norm.weight", (h,), "norm"),
           ("output.weight", (m["vocab"], h), "dense")]
    for i in range(m["layers"]):
        out += [(f"blk.{i}.attn_norm.weight", (h,), "norm"), (f"blk.{i}.attn_q.weight", (h, h), "ternary"),
                (f"blk.{i}.attn_k.weight", (kv, h), "ternary"), (f"blk.{i}.attn_v.weight", (kv, h), "ternary"),
                (f"blk.{i}.attn_output.weight", (h, h), "ternary"), (f"blk.{i}.ffn_norm.weight", (h,), "norm"),
                *_ffn(m, i)]
    return out


def _values(kind: str, shape: tuple, rng) -> np.ndarray:
    if kind == "norm" and len(shape) == 2:  # a router: random, so tokens spread over the experts
        return rng.normal(0, 1.0, shape).astype(np.float32)
    if kind == "norm":
        return np.ones(shape, dtype=np.float32)
    if kind == "dense":
        return rng.normal(0, 0.02, shape).astype(np.float16)
    scale = np.float16(1.0 / np.sqrt(shape[-1]))  # fp16-exact: every ternary type keeps it exactly
    return (rng.integers(-1, 2, shape, dtype=np.int8).astype(np.float16) * scale).astype(np.float16)


def _add_metadata(writer, m: dict, file_type) -> None:
    writer.add_name("veclut synthetic ternary model")
    writer.add_context_length(4096)
    writer.add_embedding_length(m["hidden"])
    writer.add_feed_forward_length(m["ffn"])
    writer.add_block_count(m["layers"])
    writer.add_head_count(m["heads"])
    writer.add_head_count_kv(m["kv_heads"])
    writer.add_rope_dimension_count(m["hidden"] // m["heads"])
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(m["vocab"])
    if m.get("experts"):
        writer.add_expert_count(m["experts"])
        writer.add_expert_used_count(m["experts_used"])
    writer.add_file_type(file_type)
    tokens, types = _vocab(m["vocab"])
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)


def write_base(path: Path, m: dict, seed: int) -> None:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    _add_metadata(writer, m, gguf.LlamaFileType.MOSTLY_F16)
    specs = _tensors(m)
    for name, shape, kind in specs:
        dtype = np.dtype(np.float32 if kind == "norm" else np.float16)
        writer.add_tensor_info(name, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    with ui.progress() as bar:
        task = bar.add_task(f"generating {path.name}", total=len(specs))
        for name, shape, kind in specs:  # one tensor in memory at a time
            writer.write_tensor_data(_values(kind, shape, rng))
            bar.advance(task)
    writer.close()


def _block_pool(qtype, kind: str, rng, rows: int = 64) -> np.ndarray:
    """Encoded blocks of `qtype` (uint8 [n, block bytes]) made from `rows` random rows of 256."""
    import gguf

    values = _values(kind, (rows, 256), rng).astype(np.float32)
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return gguf.quants.quantize(values, qtype).reshape(rows * 256 // block, size)


def write_quantized(path: Path, m: dict, seed: int, ternary_type: str = "TQ2_0", dense_type: str = "Q4_0") -> None:
    """The model written directly in quantized types, for shapes too large for an F16 base (an
    8B-parameter TQ2_0 file is 2.6 GB, its F16 base 16 GB): each tensor is a random sequence of
    blocks drawn from a small pool of encoded blocks, written in chunks, so memory stays small
    whatever the model size. Norms (and routers) are F32 as in write_base."""
    import gguf

    q = gguf.GGMLQuantizationType
    types = {"ternary": q[ternary_type], "dense": q[dense_type], "norm": q.F32}
    writer = gguf.GGUFWriter(str(path), "llama")
    _add_metadata(writer, m, gguf.LlamaFileType[f"MOSTLY_{ternary_type}"])
    specs = _tensors(m)
    for name, shape, kind in specs:
        block, size = gguf.GGML_QUANT_SIZES[types[kind]]
        writer.add_tensor_info(name, shape, np.dtype(np.float32), int(np.prod(shape)) // block * size,
                               raw_dtype=types[kind])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    out, align = writer.fout[0], writer.data_alignment
    rng = np.random.default_rng(seed)
    pools = {kind: _block_pool(types[kind], kind, rng) for kind in ("ternary", "dense")}
    with ui.progress() as bar:
        task = bar.add_task(f"generating {path.name}", total=len(specs))
        for name, shape, kind in specs:
            out.write(bytes(-out.tell() % align))
            if kind == "norm":
                out.write(_values(kind, shape, rng).tobytes())
            else:
                pool, left = pools[kind], int(np.prod(shape)) // gguf.GGML_QUANT_SIZES[types[kind]][0]
                while left:  # at most 1M blocks (18-66 MB) in memory
                    n = min(left, 1 << 20)
                    out.write(pool[rng.integers(0, len(pool), n)].tobytes())
                    left -= n
            bar.advance(task)
        out.write(bytes(-out.tell() % align))
    writer.close()


def model_dir(suite: str, m: dict, seed: int) -> Path:
    key = hashlib.sha256(json.dumps({"model": m, "seed": seed, "v": 1}, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "models" / f"{suite}-{key}"


def ensure_base(suite: str, m: dict, seed: int) -> Path:
    final = model_dir(suite, m, seed) / "base-f16.gguf"
    if final.is_file():
        return final
    atomic.make_dirs(final.parent, "create the model cache")
    tmp = final.with_name(f".veclut-tmp-{os.getpid()}-{final.name}")
    try:
        write_base(tmp, m, seed)
        os.replace(tmp, final)
    except OSError as err:
        from .errors import describe_os_error

        raise describe_os_error(err, f"write {final}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return final


def ensure_type(bin_dir: Path, base: Path, type_name: str, embedding_type: str, output_type: str,
                runtime: str = "") -> Path:
    """The base model quantized to `type_name` by the llama-quantize in `bin_dir` (cached next to
    the base); `runtime` names another runtime's quantizer (a peer's), which gets files of its own."""
    prefix = f"{runtime}-" if runtime else ""
    final = base.with_name(f"{prefix}{type_name.lower()}-{embedding_type.lower()}-{output_type.lower()}.gguf")
    if final.is_file():
        return final
    tmp = final.with_name(f".veclut-tmp-{os.getpid()}-{final.name}")
    cmd = [str(bin_dir / "llama-quantize"), "--token-embedding-type", embedding_type,
           "--output-tensor-type", output_type, str(base), str(tmp), type_name]
    quantizer = f"{runtime}'s llama-quantize" if runtime else "llama-quantize"
    try:
        with ui.status(f"{quantizer} {base.parent.name} -> {type_name}"):
            result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            tail = ((result.stderr.strip() or result.stdout.strip()).splitlines() or ["no output"])[-1]
            raise VeclutError(f"{quantizer} could not make {type_name} ({tail})")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final
