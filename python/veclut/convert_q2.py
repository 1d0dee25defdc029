"""Q2_0 -> Q2_V for `veclut convert --type Q2_V`: the same 2-bit codes and scale with the offset
-1 (Q2_0's levels -d, 0, d, 2d are d * (q - 1)), so the values are identical; every chunk is
checked by dequantizing both."""

import numpy as np

from .errors import VeclutError

Q2_0_BYTES, Q2_V_BYTES, QK = 18, 20, 64  # { half d; uint8 qs[16] } and { half d; half o; uint8 qs[16] }
MINUS_ONE = np.array([-1], dtype=np.float16).view(np.uint8)


def q2_0_to_q2_v(raw: np.ndarray) -> np.ndarray:
    """Blocks (n, 18) of Q2_0 as blocks (n, 20) of Q2_V."""
    offsets = np.broadcast_to(MINUS_ONE, (raw.shape[0], 2))
    return np.concatenate([raw[:, :2], offsets, raw[:, 2:]], axis=1)


def q2_0_values(raw: np.ndarray) -> np.ndarray:
    """Q2_0's dequantization (ggml-quants.c: (q - 1) * d), blocks (n, 18) -> (n, 64) float32."""
    d = np.ascontiguousarray(raw[:, :2]).view(np.float16).astype(np.float32)
    q = (raw[:, 2:, None] >> np.array([0, 2, 4, 6], dtype=np.uint8)) & np.uint8(3)
    return (q.reshape(raw.shape[0], QK).astype(np.float32) - np.float32(1)) * d


def convert_rows(raw: np.ndarray, name: str, gguf) -> np.ndarray:
    """Rows of Q2_0 bytes (rows, K/64*18) to Q2_V bytes, verified value for value."""
    blocks = raw.reshape(-1, Q2_0_BYTES)
    out = q2_0_to_q2_v(blocks)
    back = gguf.quants.dequantize(out, gguf.GGMLQuantizationType.Q2_V).reshape(-1, QK)
    if not np.array_equal(back, q2_0_values(blocks), equal_nan=True):
        raise VeclutError(f"internal check failed: {name} changed its values on conversion to Q2_V; please report this")
    return out.reshape(raw.shape[0], -1)
