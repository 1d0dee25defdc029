"""The foreign ternary layouts (veclut.foreign_types): facts checked on bytes written by hand,
then every type's encoder and reader against each other, value by value.

The layouts were also checked against the other runtimes themselves, by hand (no test can
depend on their builds): ik_llama.cpp 0.1.5's llama-quantize output (`veclut bench --peer
ik_llama`'s models in the cache, smoke and bitnet-large shapes, IQ1_BN / IQ2_BN / IQ2_BN_R4,
182 tensors each) reads back as exactly the F16 weights they were quantized from, and the
encoders here write those files' tensors byte for byte; an I2_S file written here, requantized
by ik's llama-quantize (--allow-requantize ... iq2_bn, its I2_S reader), gives back the same
weights. tests/test_convert_foreign.py repeats the first check when those files are present."""

import io

import numpy as np
import pytest

from veclut.foreign_types import FOREIGN_TYPES, FormatError

TYPES = {t.name: t for t in FOREIGN_TYPES.values()}


def _read_all(ftype, data: bytes, k: int, rows: int, step: int | None = None):
    handle = io.BytesIO(data)
    step = step or rows
    parts = [ftype.read(handle, 0, k, rows, r, min(step, rows - r)) for r in range(0, rows, step)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_iq2_bn_layout_by_hand():
    """A row: float32 scale, then per 64 weights 16 bytes; byte j holds weights j, j+16, j+32,
    j+48 in bits 0-1, 2-3, 4-5, 6-7 as trit + 1."""
    row = np.zeros(4 + 16, dtype=np.uint8)
    row[:4] = np.array([0.5], dtype=np.float32).view(np.uint8)
    row[4:] = 0b01010101                     # every weight 0
    row[4 + 3] = 0b10_01_00_10              # weights 3, 19, 35, 51: +1, -1, 0, +1
    trits, scales = _read_all(TYPES["IQ2_BN"], row.tobytes(), 64, 1)
    want = np.zeros(64, dtype=np.int8)
    want[[3, 19, 35, 51]] = [1, -1, 0, 1]
    assert np.array_equal(trits[0], want) and scales[0] == 0.5


def test_iq2_bn_r4_layout_by_hand():
    """4 rows: 4 float32 scales, then per 64-weight block 64 bytes; byte 4r + i + 16l holds
    weight 16l + i + 4s of row r in bits 2s."""
    group = np.full(16 + 64, 0b01010101, dtype=np.uint8)
    group[:16] = np.array([1, 2, 3, 4], dtype=np.float32).view(np.uint8)
    r, i, l = 3, 0, 1
    group[16 + 4 * r + i + 16 * l] = 0b01_01_10_00   # s = 0: -1, s = 1: +1
    trits, scales = _read_all(TYPES["IQ2_BN_R4"], group.tobytes(), 64, 4)
    want = np.zeros((4, 64), dtype=np.int8)
    want[3, 16 * l + i + 0] = -1
    want[3, 16 * l + i + 4] = 1
    assert np.array_equal(trits, want) and scales.tolist() == [1, 2, 3, 4]


def test_iq1_bn_layout_by_hand():
    """A row: fp16 scale, then per 64 weights 13 bytes; 5 weights per byte as
    ceil(256 * sum(q_j 3^j) / 243), q = trit + 1; the 16th weight of each group of 16 in `extra`."""
    zero5 = (256 * sum(1 * 3 ** j for j in range(5)) + 242) // 243       # five zeros
    zero4 = (256 * sum(1 * 3 ** j for j in range(4)) + 242) // 243       # extra: four zeros
    row = np.array([0, 0] + [zero5] * 12 + [zero4], dtype=np.uint8)
    row[:2] = np.array([0.25], dtype=np.float16).view(np.uint8)
    row[2 + 4] = (256 * (2 + 0 * 3 + 1 * 9 + 1 * 27 + 0 * 81) + 242) // 243  # group 1, byte 1: +1, -1, 0, 0, -1
    row[2 + 12] = (256 * (1 + 1 * 3 + 2 * 9 + 1 * 27) + 242) // 243          # weight 16 * 2 + 15 is +1
    trits, scales = _read_all(TYPES["IQ1_BN"], row.tobytes(), 64, 1)
    want = np.zeros(64, dtype=np.int8)
    want[16 + 5: 16 + 10] = [1, -1, 0, 0, -1]
    want[47] = 1
    assert np.array_equal(trits[0], want) and scales[0] == 0.25


def test_i2_s_layout_by_hand():
    """128-weight blocks of 32 bytes over the whole tensor: byte p holds weights p, p+32, p+64,
    p+96 in bits 6-7, 4-5, 2-3, 0-1 as trit + 1; one float32 scale after the codes, 32 bytes of tail."""
    data = np.full(2 * 32 + 32, 0b01010101, dtype=np.uint8)
    data[64:] = 0
    data[64:68] = np.array([0.125], dtype=np.float32).view(np.uint8)
    data[32 + 5] = 0b10_00_01_10             # block 1, byte 5: weights 133, 165, 197, 229
    trits, scales = _read_all(TYPES["I2_S"], data.tobytes(), 64, 4)
    want = np.zeros(256, dtype=np.int8)
    want[[133, 165, 197, 229]] = [1, -1, 0, 1]
    assert np.array_equal(trits.reshape(-1), want) and scales.tolist() == [0.125] * 4


@pytest.mark.parametrize("name, k, rows, step", [
    ("IQ2_BN", 256, 6, 4), ("IQ2_BN", 576, 3, 1), ("IQ1_BN", 256, 5, 2), ("IQ1_BN", 192, 4, 3),
    ("IQ2_BN_R4", 256, 8, 4), ("IQ2_BN_R4", 320, 12, 8),
    ("I2_S", 256, 5, 2), ("I2_S", 192, 6, 1), ("I2_S", 160, 4, 3),  # 192, 160: blocks cross rows
])
def test_encode_then_read_gives_every_value_back(name, k, rows, step):
    ftype = TYPES[name]
    rng = np.random.default_rng(k + rows)
    trits = rng.integers(-1, 2, (rows, k)).astype(np.int8)
    scales = np.float16(rng.uniform(0.01, 3, rows)).astype(np.float32)
    scales[1] = 0 if name != "I2_S" else scales[1]
    if name == "I2_S":
        scales[:] = scales[0]
    data = ftype.encode(trits, scales[0] if name == "I2_S" else scales)
    assert len(data) == ftype.nbytes(k, rows)
    got, got_scales = _read_all(ftype, data.tobytes(), k, rows, step)
    assert np.array_equal(got, trits) and np.array_equal(got_scales, scales)


def test_iq1_bn_every_code_of_five_trits():
    digits = np.array(np.meshgrid(*[range(3)] * 5, indexing="ij")).reshape(5, -1).T
    codes = TYPES["IQ1_BN"]._byte(digits)
    assert len(set(codes.tolist())) == 243
    assert np.array_equal(TYPES["IQ1_BN"]._digits(codes, TYPES["IQ1_BN"].MULT) + 1, digits)


@pytest.mark.parametrize("name", ["IQ2_BN", "IQ2_BN_R4", "I2_S"])
def test_two_bit_code_3_is_refused(name):
    ftype = TYPES[name]
    data = bytearray(ftype.encode(np.zeros((4, 256), dtype=np.int8), np.float32(1) if name == "I2_S" else np.ones(4)))
    data[20] |= 0b11
    with pytest.raises(FormatError, match="2-bit code 3, which is not a ternary value"):
        _read_all(ftype, bytes(data), 256, 4)


@pytest.mark.parametrize("name, k, rows, phrase", [
    ("IQ2_BN", 100, 2, "not a multiple of IQ2_BN's 64-weight block"),
    ("IQ1_BN", 32, 2, "not a multiple of IQ1_BN's 64-weight block"),
    ("IQ2_BN_R4", 256, 6, "not a multiple of the 4 rows IQ2_BN_R4 interleaves"),
    ("I2_S", 96, 3, "not a whole number of I2_S's 128-weight blocks"),
])
def test_shapes_a_type_cannot_hold_are_refused(name, k, rows, phrase):
    with pytest.raises(FormatError, match=phrase):
        TYPES[name].nbytes(k, rows)


def test_sizes_are_those_of_the_runtimes():
    """ik: row_meta_size + K/64 * block size; bitnet.cpp: n/4 + 32."""
    assert TYPES["IQ2_BN"].nbytes(2560, 10) == 10 * (4 + 2560 // 4)
    assert TYPES["IQ2_BN_R4"].nbytes(2560, 8) == 8 * (4 + 2560 // 4)
    assert TYPES["IQ1_BN"].nbytes(2560, 10) == 10 * (2 + 13 * 40)
    assert TYPES["I2_S"].nbytes(8640, 3200) == 8640 * 3200 // 4 + 32


def test_a_damaged_foreign_shape_is_refused_or_counted_without_wrapping():
    """A zero dimension is one sentence; a shape too large for int64 is counted exactly (Python
    integers), so the size check that follows sees it instead of a wrapped-around small number."""
    import numpy as np

    from veclut.errors import VeclutError
    from veclut.foreign_reader import _foreign_tensor
    from veclut.foreign_types import FOREIGN_TYPES

    iq2_bn = FOREIGN_TYPES[135]
    with pytest.raises(VeclutError, match="tensor t has a dimension of 0 .*re-create or re-download it"):
        _foreign_tensor("t", iq2_bn, np.array([256, 0], dtype=np.uint64), 0)
    huge = _foreign_tensor("t", iq2_bn, np.array([256, 2**40, 2**40], dtype=np.uint64), 0)
    assert huge.n_elements == 256 * 2**80 and huge.n_bytes > 2**80
