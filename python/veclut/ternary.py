"""Ternary weights in numpy: detection, BitNet's absmean ternarisation, distance from ternary."""

import numpy as np

BLOCK = 256


def blocks_of(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).reshape(-1, BLOCK)


def ternary_blocks(x: np.ndarray) -> np.ndarray:
    """Per 256-block: does it hold only -a, 0 and +a for one a >= 0 (its absmax)?"""
    b = blocks_of(x)
    amax = np.abs(b).max(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        trits = np.where(amax > 0, np.rint(b / amax), 0)
    return np.all(trits * amax == b, axis=1)


def is_block_ternary(x: np.ndarray) -> bool:
    return bool(ternary_blocks(x).all())


def absmean_scale(abs_sum: float, count: int) -> np.float32:
    """BitNet b1.58's per-tensor scale: mean |w|, clamped away from zero (1e-5, as the model code)."""
    return np.float32(max(abs_sum / max(count, 1), 1e-5))


def absmean_ternarize(x: np.ndarray, scale: np.float32) -> np.ndarray:
    """round(w / scale) clamped to [-1, 1], times scale: the rule BitNet models are trained with."""
    x = np.asarray(x, dtype=np.float32)
    return (np.clip(np.rint(x / scale), -1, 1) * scale).astype(np.float32)


def relative_error(x: np.ndarray, y: np.ndarray) -> float:
    """||x - y|| / ||x|| in float64."""
    x64, y64 = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    norm = float(np.sqrt((x64 * x64).sum()))
    return float(np.sqrt(((x64 - y64) ** 2).sum())) / norm if norm > 0 else 0.0
