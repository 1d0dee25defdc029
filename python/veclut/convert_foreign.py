"""Foreign ternary tensors (I2_S, IQ1_BN, IQ2_BN, IQ2_BN_R4; foreign_types.py) -> the target
type, or, for rows its 256-weight block does not fit, the first type of FALLBACKS that takes
them. Every chunk is checked: the written tensor dequantizes to the source's trits times its
scale rounded to fp16 (exactly the source's values when the scale is an fp16 number)."""

import numpy as np

from .errors import VeclutError
from .foreign_types import FP16_MAX, FormatError

# Types that take rows the target's 256-weight block does not fit, with why they keep the values.
FALLBACKS = (
    ("Q2_0", "Q2_0's 64-weight blocks hold the same ternary values ((q - 1) * d, fp16 d)"),
    ("F32", "F32 holds any values"),
)
CHUNK_BYTES = 8 << 20   # float32 bytes of rows per chunk, as convert_gguf


def plan(t, target, gguf):
    """The TensorPlan of a foreign tensor: into `target`, or a fallback that takes its rows."""
    from .convert_gguf import TensorPlan

    quant = gguf.GGMLQuantizationType
    shape = tuple(int(s) for s in t.shape)
    k, rows = shape[0], t.n_elements // shape[0]
    block = gguf.GGML_QUANT_SIZES[target][0]
    dst, reason = target, f"{t.tensor_type.name} -> {target.name}"
    if k % block:
        name, why = next((n, w) for n, w in FALLBACKS if k % gguf.GGML_QUANT_SIZES[quant[n]][0] == 0)
        dst = quant[name]
        reason = f"row length {k} is not a multiple of {target.name}'s {block}-weight block; {why}"
    block, size = gguf.GGML_QUANT_SIZES[dst]
    return TensorPlan(t.name, t.tensor_type, dst, shape, int(t.data_offset), int(t.n_bytes),
                      rows * (k // block) * size, reason)


def _fail(plan, what: str) -> VeclutError:
    return VeclutError(f"tensor {plan.name} ({plan.src_type.name}) {what}: the source file is corrupt; "
                       "re-create or re-download it")


def _read(handle, plan, row0: int, n: int):
    k, rows = plan.shape[0], int(np.prod(plan.shape[1:]))
    try:
        trits, scales = plan.src_type.read(handle, plan.src_offset, k, rows, row0, n)
    except FormatError as err:
        raise _fail(plan, f"holds {err}") from None
    bad = ~np.isfinite(scales)
    if bad.any():
        raise _fail(plan, f"holds a NaN or infinite scale (row {row0 + int(np.argmax(bad))})")
    return trits, scales


def _fp16_scales(plan, scales: np.ndarray, row0: int) -> np.ndarray:
    """The scales as the target stores them (fp16), refused where fp16 cannot come within its own
    rounding (2^-11 relative) of them: beyond its range, or too small for its normal numbers."""
    rounded = scales.astype(np.float16).astype(np.float32)
    nonzero = scales != 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        change = np.where(nonzero, np.abs(rounded - scales) / np.abs(scales), 0)
    off = (np.abs(scales) > FP16_MAX) | (change > 2.0 ** -11)
    if off.any():
        row = int(np.argmax(off))
        raise VeclutError(f"tensor {plan.name} ({plan.src_type.name}) has the scale {scales[row]:.6g} in row {row0 + row}, "
                          f"which fp16 cannot hold (range {2.0 ** -14:.3g} to {FP16_MAX:g}); {plan.dst_type.name} "
                          "keeps fp16 scales, so it cannot take this tensor without changing its values")
    return rounded


def _pack_q2_0(trits: np.ndarray, scales16: np.ndarray) -> np.ndarray:
    """Q2_0 blocks { fp16 d; 16 bytes of codes, weight 4i + j in bits 2j of byte i } (ggml-quants.c
    dequantize_row_q2_0: (q - 1) * d), rows of `trits` with one d per row."""
    rows, k = trits.shape
    codes = (trits.astype(np.int8) + 1).astype(np.uint8).reshape(rows, k // 64, 16, 4)
    qs = codes[..., 0] | codes[..., 1] << 2 | codes[..., 2] << 4 | codes[..., 3] << 6
    d = np.broadcast_to(scales16.astype(np.float16).reshape(rows, 1, 1), (rows, k // 64, 1)).view(np.uint8)
    return np.concatenate([d, qs], axis=-1).reshape(rows, -1)


def _as_f32(plan, trits, scales, scales16, gguf):
    values = trits * scales[:, None]
    return values, values


def _as_q2_0(plan, trits, scales, scales16, gguf):
    from .convert_q2 import q2_0_values

    q = _pack_q2_0(trits, scales16)
    return q, q2_0_values(q.reshape(-1, 18)).reshape(trits.shape)


def _by_gguf_py(plan, trits, scales, scales16, gguf):
    """The target's own reference quantizer (gguf-py, bytes equal to ggml's) on trit * scale."""
    with np.errstate(all="ignore"):
        q = gguf.quants.quantize(trits * scales[:, None], plan.dst_type)
        return q, gguf.quants.dequantize(q, plan.dst_type).reshape(trits.shape)


# (bytes, their dequantized values) of rows in a type; the targets themselves go through gguf-py
ENCODERS = {"F32": _as_f32, "Q2_0": _as_q2_0}


def convert_tensor(handle, out, plan, report, bar, task, gguf) -> None:
    k, rows = plan.shape[0], int(np.prod(plan.shape[1:]))
    unit = plan.src_type.rows_per_group
    step = max(unit, CHUNK_BYTES // (4 * k) // unit * unit)
    identical = True
    for row0 in range(0, rows, step):
        n = min(step, rows - row0)
        trits, scales = _read(handle, plan, row0, n)
        scales16 = scales if plan.dst_type.name == "F32" else _fp16_scales(plan, scales, row0)
        q, back = ENCODERS.get(plan.dst_type.name, _by_gguf_py)(plan, trits, scales, scales16, gguf)
        if not np.array_equal(back, trits * scales16[:, None]):
            raise VeclutError(f"internal check failed: {plan.name} changed its values on conversion to "
                              f"{plan.dst_type.name}; please report this")
        nonzero = scales != 0
        if not np.array_equal(scales16, scales):
            identical = False
            change = float(np.max(np.abs(scales16[nonzero] - scales[nonzero]) / np.abs(scales[nonzero])))
            report.max_scale_change = max(report.max_scale_change, change)
        out.write(np.ascontiguousarray(q).tobytes())
        bar.advance(task, n * plan.src_bytes // rows)
    if identical:
        report.identical.add(plan.name)
    if plan.reason.startswith("row length"):
        report.repacked.append((plan.name, plan.src_type.name, plan.dst_type.name, plan.reason))
