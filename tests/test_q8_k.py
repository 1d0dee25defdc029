"""veclut's activation quantizer writes exactly the Q8_K bytes of ggml's reference quantizer (the
kernels' results equal upstream's only if their activations do): random rows, rows whose largest
magnitude appears with both signs (the first one sets the sign), zero blocks, values that round
half-way, very small and very large scales; under every kernel set this CPU runs."""

import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.build

QK_K = 256


def _rows() -> np.ndarray:
    rng = np.random.default_rng(7)
    rows = [rng.normal(0, 1, QK_K * 8), rng.standard_cauchy(QK_K * 8), rng.normal(0, 1e-30, QK_K * 8),
            rng.normal(0, 1e30, QK_K * 8)]
    tie = rng.normal(0, 1, QK_K * 8)
    tie[3], tie[200], tie[300], tie[301] = -9.0, 9.0, 7.0, -7.0  # |max| twice, opposite signs
    rows.append(tie)
    zeros = rng.normal(0, 1, QK_K * 8)
    zeros[QK_K:2 * QK_K] = 0.0  # a whole zero block
    rows.append(zeros)
    half = np.round(rng.normal(0, 40, QK_K * 8)) + 0.5  # with max 127 the products land near .5
    half[0] = 127.0
    rows.append(half)
    return np.ascontiguousarray(np.stack(rows).astype(np.float32))


QUANTIZE_BOTH = r"""
import ctypes, sys, numpy as np
bin_dir, path = sys.argv[1], sys.argv[2]
base = ctypes.CDLL(bin_dir + "/libggml-base.so", mode=ctypes.RTLD_GLOBAL)
cpu = ctypes.CDLL(bin_dir + "/libggml-cpu.so", mode=ctypes.RTLD_GLOBAL)
rows = np.load(path)
k = rows.shape[1]
size = k // 256 * (4 + 256 + 32)
out = []
for fn in (base.quantize_row_q8_K_ref, cpu.veclut_quantize_row_q8_K):
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    got = np.zeros((rows.shape[0], size), dtype=np.uint8)
    for r in range(rows.shape[0]):
        fn(rows[r].ctypes.data, got[r].ctypes.data, k)
    out.append(got)
np.save(path, np.stack(out))
"""


def _kernel_sets(native_build) -> list[str]:
    info = subprocess.run([str(native_build.bin_dir / "veclut-info")], capture_output=True, text=True).stdout
    return next(l.split(": ", 1)[1] for l in info.splitlines() if l.startswith("kernel_sets:")).split(",")


def test_activation_bytes_equal_ggml_reference(native_build, tmp_path):
    for kernels in _kernel_sets(native_build):
        path = tmp_path / f"rows-{kernels}.npy"
        np.save(path, _rows())
        result = subprocess.run([sys.executable, "-c", QUANTIZE_BOTH, str(native_build.bin_dir), str(path)],
                                capture_output=True, text=True, env={**os.environ, "VECLUT_KERNELS": kernels})
        assert result.returncode == 0, result.stderr[-2000:]
        ref, ours = np.load(path)
        assert ref.any(), "the reference wrote nothing"
        bad = np.argwhere(ref != ours)
        assert bad.size == 0, f"{kernels}: {len(bad)} bytes differ, first at row/byte {bad[0].tolist()}"
