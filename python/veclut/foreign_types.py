"""Ternary tensor types of other runtimes that `veclut convert` reads: bitnet.cpp's I2_S and
ik_llama.cpp's IQ1_BN, IQ2_BN and IQ2_BN_R4. One class per type, registered by its type id
(`FOREIGN_TYPES`); each states its layout (facts from those projects' own quantizers and
readers, named in the class) and implements it twice, vectorised: `read` (file bytes -> trits
in {-1, 0, 1} and one scale per row) and `encode` (trits and scales -> file bytes, which the
tests use to write files in each format). A weight's value is always trit * scale.

Every layout decodes any byte to some value, except the 2-bit ones: code 3 is not a trit, and
`read` refuses it rather than guess what a runtime would make of it (ik decodes it as +2,
bitnet.cpp as 0 or +2 depending on the code path)."""

import numpy as np


class FormatError(ValueError):
    """The bytes or the shape of a tensor do not fit its declared type: the message says how."""


FP16_MAX = 65504.0


def _two_bit_codes(raw: np.ndarray, shifts) -> np.ndarray:
    """Bytes (..., n) -> 2-bit codes (..., len(shifts), n), one plane per shift."""
    return (raw[..., None, :] >> np.asarray(shifts, dtype=np.uint8)[:, None]) & np.uint8(3)


def _trits_of_codes(codes: np.ndarray) -> np.ndarray:
    if (codes == 3).any():
        raise FormatError("2-bit code 3, which is not a ternary value")
    return codes.astype(np.int8) - 1


def _codes_of_trits(trits: np.ndarray) -> np.ndarray:
    return (np.asarray(trits, dtype=np.int8) + 1).astype(np.uint8)


def _pack_planes(planes: np.ndarray, shifts) -> np.ndarray:
    """Codes (..., len(shifts), n) -> bytes (..., n): the inverse of _two_bit_codes."""
    out = np.zeros(planes.shape[:-2] + planes.shape[-1:], dtype=np.uint8)
    for plane, shift in enumerate(shifts):
        out |= planes[..., plane, :] << np.uint8(shift)
    return out


class ForeignType:
    """A foreign tensor type: its id in the file, its name, the runtime that defines it."""

    id: int
    name: str
    origin: str
    block: int               # weights per block of the layout
    rows_per_group = 1       # rows stored together (interleaved); chunks of rows are multiples of it
    scale_bits = 32          # the scale is a float32 (16: fp16)

    def __repr__(self) -> str:
        return f"{self.name} (type id {self.id}, {self.origin})"

    def check_shape(self, k: int, rows: int) -> None:
        if k % self.block:
            raise FormatError(f"its rows are {k} weights long, not a multiple of {self.name}'s {self.block}-weight block")
        if rows % self.rows_per_group:
            raise FormatError(f"it has {rows} rows, not a multiple of the {self.rows_per_group} rows "
                              f"{self.name} interleaves")

    def nbytes(self, k: int, rows: int) -> int:
        """Bytes of a tensor of `rows` rows of `k` weights in the file."""
        self.check_shape(k, rows)
        return rows * self.row_bytes(k)

    def read(self, handle, offset: int, k: int, rows: int, row0: int, nrows: int):
        """Rows [row0, row0 + nrows) of the tensor at `offset`: (trits int8 (nrows, k), scales float32 (nrows,))."""
        size = self.row_bytes(k)
        handle.seek(offset + row0 * size)
        data = handle.read(nrows * size)
        if len(data) < nrows * size:
            raise FormatError("the file ends inside its data")
        return self.decode_rows(np.frombuffer(data, dtype=np.uint8).reshape(nrows // self.rows_per_group, -1), k)

    def encode(self, trits: np.ndarray, scales: np.ndarray) -> np.ndarray:
        """The tensor's bytes for trits (rows, k) in {-1, 0, 1} and one scale per row."""
        trits = np.asarray(trits, dtype=np.int8)
        rows, k = trits.shape
        self.check_shape(k, rows)
        return self.encode_rows(trits, np.asarray(scales, dtype=np.float32).reshape(rows)).reshape(-1)


class IQ2_BN(ForeignType):
    """ik_llama.cpp's IQ2_BN (ggml.h: GGML_TYPE_IQ2_BN = 135). A row is a float32 scale (the
    row's absmax, iqk_quantize.cpp quantize_one_row_2bn), then blocks of 64 weights in 16 bytes
    (block_iq2_bn): byte j of a block holds weights j, j+16, j+32, j+48 in bits 0-1, 2-3, 4-5,
    6-7, as code = trit + 1 (dequantize_row_iq2_bn: code - 1). Row size: 4 + K/4 bytes
    (ggml.c: row_meta_size 4)."""

    id, name, origin, block = 135, "IQ2_BN", "ik_llama.cpp", 64
    SHIFTS = (0, 2, 4, 6)

    def row_bytes(self, k: int) -> int:
        return 4 + k // 4

    def decode_rows(self, raw: np.ndarray, k: int):
        scales = np.ascontiguousarray(raw[:, :4]).view(np.float32).reshape(-1)
        blocks = raw[:, 4:].reshape(raw.shape[0], k // 64, 16)
        return _trits_of_codes(_two_bit_codes(blocks, self.SHIFTS)).reshape(raw.shape[0], k), scales

    def encode_rows(self, trits: np.ndarray, scales: np.ndarray) -> np.ndarray:
        rows, k = trits.shape
        planes = _codes_of_trits(trits).reshape(rows, k // 64, 4, 16)
        return np.concatenate([scales.reshape(rows, 1).view(np.uint8), _pack_planes(planes, self.SHIFTS).reshape(rows, -1)], axis=1)


class IQ2_BN_R4(ForeignType):
    """ik_llama.cpp's IQ2_BN_R4 (GGML_TYPE_IQ2_BN_R4 = 335): IQ2_BN with 4 rows interleaved
    (iqk_quantize.cpp repack_iq2_bn / dequantize_row_iq2_bn_r4). A group of 4 rows is the 4
    float32 row scales, then per 64-weight block 64 bytes: byte 4r + i + 16l holds, of row r,
    the weights 16l + i + 4s in bits 2s..2s+1 (s = 0..3), as code = trit + 1. Same size as
    IQ2_BN: 4 + K/4 bytes per row; the row count must be a multiple of 4."""

    id, name, origin, block = 335, "IQ2_BN_R4", "ik_llama.cpp", 64
    rows_per_group = 4
    SHIFTS = (0, 2, 4, 6)

    def row_bytes(self, k: int) -> int:
        return 4 + k // 4

    def decode_rows(self, raw: np.ndarray, k: int):
        groups = raw.shape[0]
        scales = np.ascontiguousarray(raw[:, :16]).view(np.float32).reshape(-1)
        blocks = raw[:, 16:].reshape(groups, k // 64, 4, 4, 4)          # (group, block, l, r, i)
        codes = _two_bit_codes(blocks, self.SHIFTS)                       # (group, block, l, r, s, i)
        trits = _trits_of_codes(codes).transpose(0, 3, 1, 2, 4, 5)       # (group, r, block, l, s, i)
        return trits.reshape(groups * 4, k), scales

    def encode_rows(self, trits: np.ndarray, scales: np.ndarray) -> np.ndarray:
        rows, k = trits.shape
        codes = _codes_of_trits(trits).reshape(rows // 4, 4, k // 64, 4, 4, 4)  # (group, r, block, l, s, i)
        planes = codes.transpose(0, 2, 3, 1, 4, 5)                               # (group, block, l, r, s, i)
        packed = _pack_planes(planes, self.SHIFTS).reshape(rows // 4, -1)
        return np.concatenate([scales.reshape(rows // 4, 4).view(np.uint8), packed], axis=1)


class IQ1_BN(ForeignType):
    """ik_llama.cpp's IQ1_BN (GGML_TYPE_IQ1_BN = 134). A row is an fp16 scale (the row's
    absmax), then blocks of 64 weights in 13 bytes (block_iq1_bn: ql[12], extra). Each group
    of 16 weights takes 3 bytes of ql, 5 weights each, plus one base-3 digit of `extra` for its
    16th weight. A byte holds digits q_j = trit + 1 as ceil(256 * sum(q_j 3^j) / 243)
    (quantize_one_row_1bn); digit j is ((byte * m_j mod 256) * 3) >> 8 with m = 81, 27, 9, 3, 1
    (dequantize_row_iq1_bn). Row size: 2 + 13 K/64 bytes (row_meta_size 2)."""

    id, name, origin, block = 134, "IQ1_BN", "ik_llama.cpp", 64
    scale_bits = 16
    MULT = np.array([81, 27, 9, 3, 1], dtype=np.uint16)
    POW3 = np.array([1, 3, 9, 27, 81], dtype=np.int32)

    def row_bytes(self, k: int) -> int:
        return 2 + 13 * (k // 64)

    @classmethod
    def _digits(cls, raw: np.ndarray, mult: np.ndarray) -> np.ndarray:
        v = (raw[..., None].astype(np.uint16) * mult) & 0xFF
        return ((v * 3) >> 8).astype(np.int8) - 1

    @classmethod
    def _byte(cls, digits: np.ndarray) -> np.ndarray:
        index = (digits.astype(np.int32) * cls.POW3[: digits.shape[-1]]).sum(axis=-1)
        return ((256 * index + 242) // 243).astype(np.uint8)

    def decode_rows(self, raw: np.ndarray, k: int):
        rows = raw.shape[0]
        scales = np.ascontiguousarray(raw[:, :2]).view(np.float16).astype(np.float32).reshape(-1)
        blocks = raw[:, 2:].reshape(rows, k // 64, 13)
        five = self._digits(blocks[:, :, :12].reshape(rows, k // 64, 4, 3), self.MULT)   # (.., group, byte, 5)
        last = self._digits(blocks[:, :, 12], self.MULT[:4])                             # (.., group)
        trits = np.concatenate([five.reshape(rows, k // 64, 4, 15), last[..., None]], axis=-1)
        return trits.reshape(rows, k), scales

    def encode_rows(self, trits: np.ndarray, scales: np.ndarray) -> np.ndarray:
        rows, k = trits.shape
        q = (np.asarray(trits, dtype=np.int8) + 1).reshape(rows, k // 64, 4, 16)
        ql = self._byte(q[..., :15].reshape(rows, k // 64, 4, 3, 5)).reshape(rows, k // 64, 12)
        extra = self._byte(q[..., 15])
        blocks = np.concatenate([ql, extra[..., None]], axis=-1).reshape(rows, -1)
        return np.concatenate([scales.astype(np.float16).reshape(rows, 1).view(np.uint8), blocks], axis=1)


class I2_S(ForeignType):
    """bitnet.cpp's I2_S (its ggml.h: GGML_TYPE_I2_S = 36, a retired id in upstream). The whole
    tensor is one stream of 128-weight blocks of 32 bytes, across row boundaries: byte p of a
    block holds weights p, p+32, p+64, p+96 in bits 6-7, 4-5, 2-3, 0-1, as code = trit + 1
    (ggml-bitnet-mad.cpp quantize_i2_s; ik_llama.cpp's dequantize_row_ms_i2s reads the same).
    One float32 scale for the tensor follows the codes, at byte n/4 of n weights, padded to 32
    bytes (ggml_nbytes: n/4 + 32). The layout is that of bitnet.cpp's x86 build and its Python
    writer (utils/convert-bitnet-embedding-to-gguf.py), in which the published GGUFs are; its
    Arm build since Nov 2025 packs 64-weight blocks instead, which no byte of the file tells
    apart."""

    id, name, origin, block = 36, "I2_S", "bitnet.cpp", 128
    SHIFTS = (6, 4, 2, 0)

    def check_shape(self, k: int, rows: int) -> None:
        if (k * rows) % self.block:
            raise FormatError(f"its {k * rows} weights are not a whole number of {self.name}'s {self.block}-weight blocks")

    def nbytes(self, k: int, rows: int) -> int:
        self.check_shape(k, rows)
        return k * rows // 4 + 32

    def read(self, handle, offset: int, k: int, rows: int, row0: int, nrows: int):
        handle.seek(offset + k * rows // 4)
        tail = handle.read(4)
        start, end = row0 * k, (row0 + nrows) * k
        b0, b1 = start // self.block, -(-end // self.block)
        handle.seek(offset + b0 * 32)
        data = handle.read((b1 - b0) * 32)
        if len(tail) < 4 or len(data) < (b1 - b0) * 32:
            raise FormatError("the file ends inside its data")
        blocks = np.frombuffer(data, dtype=np.uint8).reshape(-1, 32)
        trits = _trits_of_codes(_two_bit_codes(blocks, self.SHIFTS)).reshape(-1)
        trits = trits[start - b0 * self.block:end - b0 * self.block].reshape(nrows, k)
        scale = np.frombuffer(tail, dtype=np.float32)[0]
        return trits, np.full(nrows, scale, dtype=np.float32)

    def encode(self, trits: np.ndarray, scales) -> np.ndarray:
        """`scales`: one number (I2_S has one scale per tensor)."""
        trits = np.asarray(trits, dtype=np.int8)
        self.check_shape(trits.shape[-1], trits.size // trits.shape[-1])
        planes = _codes_of_trits(trits).reshape(-1, 4, 32)
        out = np.zeros(trits.size // 4 + 32, dtype=np.uint8)
        out[: trits.size // 4] = _pack_planes(planes, self.SHIFTS).reshape(-1)
        out[trits.size // 4: trits.size // 4 + 4] = np.array([scales], dtype=np.float32).view(np.uint8)
        return out


FOREIGN_TYPES = {t.id: t for t in (I2_S(), IQ1_BN(), IQ2_BN(), IQ2_BN_R4())}


def readable_types() -> str:
    """'I2_S (36, bitnet.cpp), IQ1_BN (134, ik_llama.cpp), ...' for messages."""
    return ", ".join(f"{t.name} ({t.id}, {t.origin})" for t in FOREIGN_TYPES.values())
