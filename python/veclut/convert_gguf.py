"""GGUF -> GGUF: ternary tensors (TQ2_0, TQ1_0, ternary-valued float or other types) become
I2_V / I1_V, or Q2_0 tensors become Q2_V (convert_q2.py); everything else is copied byte for byte. Streams row chunks (bounded memory),
verifies every converted chunk, writes under a temporary name and renames at the end. Files of
other runtimes: their ternary types are read by foreign_reader.py and converted by
convert_foreign.py, their metadata renamed by convert_meta.py."""

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import convert_foreign, convert_meta, convert_q2, foreign_reader, ui
from .errors import VeclutError
from .ternary import absmean_scale, absmean_ternarize, blocks_of, relative_error, ternary_blocks

# Linear weights of transformer blocks: the tensors ternary models store as ternary.
# Everything else (embeddings, output head, norms) is copied as it is.
TERNARY_CANDIDATES = (
    re.compile(r"^blk\.\d+\.attn_(q|k|v|qkv|output)\.weight$"),
    re.compile(r"^blk\.\d+\.ffn_(gate|up|down)(_exps|_shexp)?\.weight$"),
)
CHUNK_BYTES = 8 << 20  # float32 bytes of source rows converted at a time (working set ~4x this)


@dataclass
class TensorPlan:
    name: str
    src_type: object
    dst_type: object
    shape: tuple            # ggml order: (K, rows, ...)
    src_offset: int
    src_bytes: int
    dst_bytes: int
    reason: str             # why it is converted or kept


@dataclass
class Report:
    converted: list = field(default_factory=list)   # (name, src type, dst type)
    kept: list = field(default_factory=list)        # (name, type, reason): a linear weight that stays as it is
    copied: list = field(default_factory=list)      # (name, type, reason): embeddings, norms, output
    max_scale_change: float = 0.0                    # relative change of block scales (fp16 rounding)
    ternarized: list = field(default_factory=list)  # (name, relative error of the ternarisation)
    identical: set = field(default_factory=set)      # converted tensors whose values did not change at all
    repacked: list = field(default_factory=list)     # (name, src type, dst type, reason): not in the target type
    notes: list = field(default_factory=list)        # what was mapped in the metadata


def is_candidate(name: str) -> bool:
    return any(p.match(name) for p in TERNARY_CANDIDATES)


def plan_tensors(reader, target, gguf) -> list[TensorPlan]:
    quant = gguf.GGMLQuantizationType
    plans = []
    for t in reader.tensors:
        if foreign_reader.is_foreign(t.tensor_type):
            plans.append(convert_foreign.plan(t, target, gguf))
            continue
        shape = tuple(int(s) for s in t.shape)
        k = shape[0]
        if target == quant.Q2_V:  # only Q2_0 (exact); float weights: llama-quantize ... Q2_V
            convertible = t.tensor_type == quant.Q2_0
        else:
            convertible = t.tensor_type in (quant.TQ2_0, quant.TQ1_0) or (is_candidate(t.name) and len(shape) >= 2)
        block = gguf.GGML_QUANT_SIZES[target][0]
        if convertible and k % block != 0:
            reason = f"row length {k} is not a multiple of {target.name}'s {block}-weight block"
            convertible = False
        elif not convertible:
            reason = "not a linear weight of a block" if len(shape) >= 2 else "1-D tensor"
            if target == quant.Q2_V:
                reason = f"{t.tensor_type.name}, not Q2_0"
        else:
            reason = f"{t.tensor_type.name} -> {target.name}"
        dst = target if convertible else t.tensor_type
        rows = math.prod(shape[1:])
        block, size = gguf.GGML_QUANT_SIZES[dst]
        plans.append(TensorPlan(t.name, t.tensor_type, dst, shape, int(t.data_offset), int(t.n_bytes),
                                rows * (k // block) * size, reason))
    return plans


def _read_rows(handle, plan: TensorPlan, row0: int, nrows: int, gguf) -> np.ndarray:
    """Rows [row0, row0+nrows) of a source tensor, dequantized to float32."""
    k = plan.shape[0]
    block, size = gguf.GGML_QUANT_SIZES[plan.src_type]
    row_bytes = k // block * size
    handle.seek(plan.src_offset + row0 * row_bytes)
    raw = _read_exactly(handle, nrows * row_bytes, plan)
    quant = gguf.GGMLQuantizationType
    if plan.src_type == quant.F32:
        return raw.view(np.float32).reshape(nrows, k)
    if plan.src_type == quant.F16:
        return raw.view(np.float16).astype(np.float32).reshape(nrows, k)
    return gguf.quants.dequantize(raw.reshape(nrows, row_bytes), plan.src_type).reshape(nrows, k)


def _rows(plan: TensorPlan) -> int:
    return math.prod(plan.shape[1:])


def _read_exactly(handle, nbytes: int, plan: TensorPlan) -> np.ndarray:
    raw = handle.read(nbytes)
    if len(raw) != nbytes:  # the file shrank after its size was checked
        raise VeclutError(f"the source ends inside tensor {plan.name}: the file is truncated or changed while it was read; "
                          "re-create or re-download it")
    return np.frombuffer(raw, dtype=np.uint8)


def _scan(handle, plan: TensorPlan, step: int, gguf) -> tuple[bool, np.float32, float]:
    """One pass over a tensor: is every block ternary, its absmean scale, share of non-ternary blocks."""
    total, count, bad, blocks = 0.0, 0, 0, 0
    for row0 in range(0, _rows(plan), step):
        x = _read_rows(handle, plan, row0, min(step, _rows(plan) - row0), gguf)
        _check_source(plan, x)
        total += float(np.abs(x).sum(dtype=np.float64))
        count += x.size
        mask = ternary_blocks(x)
        bad += int((~mask).sum())
        blocks += mask.size
    return bad == 0, absmean_scale(total, count), bad / max(blocks, 1)


def _convert_tensor(handle, out, plan: TensorPlan, ternarize: bool, report: Report, bar, task, gguf) -> None:
    k, rows = plan.shape[0], _rows(plan)
    step = max(1, CHUNK_BYTES // (4 * k))
    upstream_ternary = plan.src_type in (gguf.GGMLQuantizationType.TQ2_0, gguf.GGMLQuantizationType.TQ1_0)
    ternary, scale, bad_share = (True, None, 0.0) if upstream_ternary else _scan(handle, plan, step, gguf)
    if not ternary and not ternarize:
        raise VeclutError(_not_ternary_message(handle, plan, step, scale, bad_share, gguf))
    err_num = err_den = 0.0
    for row0 in range(0, rows, step):
        n = min(step, rows - row0)
        x = _read_rows(handle, plan, row0, n, gguf)
        if not ternary:
            t = absmean_ternarize(x, scale)
            err_num += float(((x.astype(np.float64) - t) ** 2).sum())
            err_den += float((x.astype(np.float64) ** 2).sum())
            x = t
        with np.errstate(all="ignore"):  # a corrupt source is reported by _verify, not by numpy warnings
            q = gguf.quants.quantize(x, plan.dst_type)
            back = gguf.quants.dequantize(q, plan.dst_type).reshape(n, k)
        _verify(plan, x, back, report)
        out.write(np.ascontiguousarray(q).tobytes())
        bar.advance(task, n * plan.src_bytes // rows)
    if not ternary:
        report.ternarized.append((plan.name, (err_num / err_den) ** 0.5 if err_den > 0 else 0.0))


def _convert_q2_0(handle, out, plan: TensorPlan, bar, task) -> None:
    import gguf

    k, rows = plan.shape[0], _rows(plan)
    row_bytes = plan.src_bytes // rows
    step = max(1, CHUNK_BYTES // row_bytes)
    handle.seek(plan.src_offset)
    for row0 in range(0, rows, step):
        n = min(step, rows - row0)
        raw = _read_exactly(handle, n * row_bytes, plan).reshape(n, row_bytes)
        out.write(np.ascontiguousarray(convert_q2.convert_rows(raw, plan.name, gguf)).tobytes())
        bar.advance(task, n * row_bytes)


def _verify(plan: TensorPlan, x: np.ndarray, back: np.ndarray, report: Report) -> None:
    """The ternary pattern must be identical; block scales may only move by fp16 rounding."""
    if np.array_equal(x, back):  # TQ2_0/TQ1_0 sources and fp16-exact scales: nothing moved
        return
    _check_source(plan, x)
    src, dst = blocks_of(x), blocks_of(back)
    a_src, a_dst = np.abs(src).max(axis=1), np.abs(dst).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_src = np.where(a_src[:, None] > 0, np.rint(src / a_src[:, None]), 0)
        t_dst = np.where(a_dst[:, None] > 0, np.rint(dst / a_dst[:, None]), 0)
    if not np.array_equal(t_src, t_dst):
        raise VeclutError(f"internal check failed: {plan.name} changed its ternary pattern on conversion; please report this")
    nonzero = a_src > 0
    if nonzero.any():
        change = float(np.max(np.abs(a_dst[nonzero] - a_src[nonzero]) / a_src[nonzero]))
        if change > 2.0 ** -11:  # more than fp16's rounding of the scale
            raise VeclutError(f"internal check failed: {plan.name} block scales moved by {change:.2e}; please report this")
        report.max_scale_change = max(report.max_scale_change, change)


def _check_source(plan: TensorPlan, x: np.ndarray) -> None:
    """A mismatch caused by the input, not by the conversion: say so, rather than 'internal'."""
    if not np.isfinite(x).all():
        what = "NaN or infinite values"
    elif plan.src_type.name in ("TQ2_0", "TQ1_0") and not ternary_blocks(x).all():
        what = "blocks that are not ternary (invalid 2-bit codes)"
    else:
        return
    raise VeclutError(f"tensor {plan.name} ({plan.src_type.name}) holds {what}: the source file is corrupt; "
                      "re-create or re-download it")


def _not_ternary_message(handle, plan: TensorPlan, step: int, scale, bad_share: float, gguf) -> str:
    x = _read_rows(handle, plan, 0, min(step, _rows(plan)), gguf)
    distance = relative_error(x, absmean_ternarize(x, scale))
    return (f"tensor {plan.name} ({plan.src_type.name}, {plan.shape[0]}x{_rows(plan)}) is not ternary: "
            f"{100 * bad_share:.0f}% of its 256-blocks hold more than three values and absmean ternarisation "
            f"would change it by {100 * distance:.1f}% (relative RMS); pass --ternarize to ternarise it anyway")


def _copy_tensor(handle, out, plan: TensorPlan, bar, task) -> None:
    handle.seek(plan.src_offset)
    left = plan.src_bytes
    while left:
        chunk = handle.read(min(CHUNK_BYTES, left))
        if not chunk:
            raise VeclutError(f"the source ends inside tensor {plan.name}: the file is truncated; re-create or re-download it")
        out.write(chunk)
        left -= len(chunk)
        bar.advance(task, len(chunk))


def _pad(out, alignment: int) -> None:
    pad = -out.tell() % alignment
    if pad:
        out.write(bytes(pad))


def convert(src: Path, tmp_out: Path, target_name: str, ternarize: bool) -> Report:
    import gguf

    try:
        reader = foreign_reader.open_reader(src)  # every tensor's size and place checked against the file
    except VeclutError:
        raise
    except Exception as err:  # gguf-py raises ValueError/IndexError/struct errors on bad files
        raise VeclutError(f"{src} is not a complete, valid GGUF file ({err.__class__.__name__}: {err}); check the file or re-create it") from None
    target = gguf.GGMLQuantizationType[target_name]
    plans = plan_tensors(reader, target, gguf)
    for plan in plans:  # tensors of upstream types were checked as the file was read; these are the others
        if plan.src_offset + plan.src_bytes > src.stat().st_size:
            raise VeclutError(f"{src} is truncated (tensor {plan.name} ends past the end of the file); re-create or re-download it")
    foreign_reader.check_sizes(reader, src.stat().st_size)

    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    meta = convert_meta.metadata_map(arch.contents() if arch else "llama", reader.fields, {t.name for t in reader.tensors})
    writer = gguf.GGUFWriter(tmp_out, meta.target)
    for fld in reader.fields.values():
        if fld.name in (gguf.Keys.General.ARCHITECTURE, gguf.Keys.General.FILE_TYPE) or fld.name.startswith("GGUF."):
            continue  # written by the writer itself, or replaced below
        if fld.name == gguf.Keys.General.ALIGNMENT:
            writer.add_custom_alignment(int(fld.contents()))
            continue
        vtype = fld.types[0]
        sub = fld.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(meta.key(fld.name), fld.contents(), vtype, sub_type=sub)
    for key, value in meta.added.items():
        writer.add_string(key, value)
    writer.add_file_type(gguf.LlamaFileType[f"MOSTLY_{target_name}"])
    for plan in plans:
        # an element shape (numpy order) with an explicit type and byte count
        writer.add_tensor_info(plan.name, plan.shape[::-1], np.dtype(np.float32), plan.dst_bytes, raw_dtype=plan.dst_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    out = writer.fout[0]
    alignment = writer.data_alignment

    report = Report(notes=meta.notes())
    with open(src, "rb") as handle, ui.progress() as bar:
        task = bar.add_task(f"converting {src.name}", total=sum(p.src_bytes for p in plans))
        for plan in plans:
            _pad(out, alignment)
            if plan.dst_type == plan.src_type:
                _copy_tensor(handle, out, plan, bar, task)
                kind = report.kept if plan.reason.startswith("row length") else report.copied
                kind.append((plan.name, plan.src_type.name, plan.reason))
                continue
            if foreign_reader.is_foreign(plan.src_type):
                convert_foreign.convert_tensor(handle, out, plan, report, bar, task, gguf)
            elif plan.dst_type == gguf.GGMLQuantizationType.Q2_V:
                _convert_q2_0(handle, out, plan, bar, task)
            else:
                _convert_tensor(handle, out, plan, ternarize, report, bar, task, gguf)
            report.converted.append((plan.name, plan.src_type.name, plan.dst_type.name))
        _pad(out, alignment)
    writer.close()
    return report
