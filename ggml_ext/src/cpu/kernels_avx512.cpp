// AVX-512 kernels (F/BW/VL; the dot path uses VBMI and VNNI where the build allows them).
//
// Vector LUT: a tile is 32 tokens, so one table entry (32 x int16) is one zmm register and one
// weight code selects it with a single load-and-add (vpaddw zmm, zmm, [table + code * 64]).
// Tables are built from the activations transposed to token-minor order, one add per entry.
// Per lookup the inner loop does: one shift+mask of a 64-bit word holding 8 codes (the entry's
// byte offset) and one vpaddw with a 64-byte memory operand, in four independent chains.
// Where the time goes (Zen 4 at 3.65 GHz, measured; docs/speed-bounds.md): a block's tables
// (64 x 81 x 64 B = 331 KiB for I2_V, 767 KiB for I1_V) live in L2, so nearly every lookup is an
// L1 miss; I2_V at ~325 GOPS per core is ~2.9 cycles per lookup, all costs included.
//
// Overflow bound: as in kernels_scalar.cpp, every entry and every partial sum inside one 256-block
// is bounded by sum |q| <= 256 * 127 = 32512 < 32767 (Q8_K values are in [-127, 127], weights in
// {-1, 0, 1}); the int16 block sums are widened to float with both scales once per block.
//
// Dot path (VBMI + VNNI): the activations of every token are prepared once per MUL_MAT in
// digit-major order, a'_j[g] = activation of digit j of code g, so that one vpermi2b maps 64
// codes to their digit j (0, 1, 2, unsigned) and one vpdpbusd multiplies them with a'_j. Digits
// are trit + 1, so the block sum is sum(digit * a) - sum(a); -sum(a) is stored in lane 0 of an
// offset vector that initialises the block's int32 accumulator.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12: _mm512_undefined_* inside the intrinsics headers
#endif

#include "kernels.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)

#include "kernels_x86.h"

#include <immintrin.h>

#include <cstring>

namespace veclut {

namespace {

constexpr int TILE = 32;
// Switch-over from the dot path to the vector LUT, measured with bench-veclut on Zen 4 (EPYC,
// 4096x4096, 1 thread, weights from DRAM): dot ~225 GOPS (I2_V) / ~165 (I1_V) from N = 8 on;
// LUT 203 / 175 at N = 20, 239 / 200 at N = 24. I1_V crosses at ~18, I2_V at ~22.
constexpr int LUT_MIN_N = 20;

// Activations of block b for nt tokens, transposed: col[k * TILE + n] (zero for n >= nt).
void transpose_acts(const block_q8_K * const * acts, int64_t b, int nt, int16_t * col) {
    if (nt < TILE) {
        std::memset(col, 0, QK_K * TILE * sizeof(int16_t));
    }
    for (int n = 0; n < nt; ++n) {
        const int8_t * q = acts[n][b].qs;
        for (int k = 0; k < QK_K; ++k) {
            col[k * TILE + n] = q[k];
        }
    }
}

// One group's table: entry(code) = sum_j (digit_j - 1) * a_j, digit by digit (one add per entry).
inline void build_group(const int16_t * col, int width, int16_t * t) {
    __m512i a[5];
    __m512i base = _mm512_setzero_si512();
    for (int j = 0; j < width; ++j) {
        a[j] = _mm512_loadu_si512(col + j * TILE);
        base = _mm512_sub_epi16(base, a[j]);
    }
    _mm512_storeu_si512(t, base);
    int span = 1;
    for (int j = 0; j < width; ++j, span *= 3) {
        const __m512i a2 = _mm512_add_epi16(a[j], a[j]);
        for (int c = 0; c < span; ++c) {
            const __m512i e = _mm512_loadu_si512(t + c * TILE);
            _mm512_storeu_si512(t + (c + span) * TILE, _mm512_add_epi16(e, a[j]));
            _mm512_storeu_si512(t + (c + 2 * span) * TILE, _mm512_add_epi16(e, a2));
        }
    }
}

void build_tables(layout kind, const block_q8_K * const * acts, int64_t b, int nt, int16_t * tables, float * act_scale) {
    alignas(64) int16_t col[QK_K * TILE];
    transpose_acts(acts, b, nt, col);
    const layout_info li = info_of(kind);
    int16_t * t = tables;
    for (int g = 0; g < li.groups5; ++g, t += 243 * TILE) {
        build_group(col + 5 * g * TILE, 5, t);
    }
    for (int g = 0; g < li.groups4; ++g, t += 81 * TILE) {
        build_group(col + (5 * li.groups5 + 4 * g) * TILE, 4, t);
    }
    for (int n = 0; n < TILE; ++n) {
        act_scale[n] = n < nt ? acts[n][b].d : 0.0f;
    }
}

// Sum of one 256-block of one row: 64 lookups (I2) or 48 + 4 (I1), two accumulators for ILP.
inline void keep_apart(__m512i & a, __m512i & b, __m512i & c, __m512i & d) {
    __asm__("" : "+v"(a), "+v"(b), "+v"(c), "+v"(d));
}

// Entry of byte k of q (8 codes loaded at once): its byte offset (code * 64) is one shift and one
// mask, which spares the load port a byte load per lookup.
template <int K>
inline __m512i entry8(const int16_t * table, uint64_t q) {
    const uint64_t off = K == 0 ? (q << 6) & 0x3FC0u : (q >> (8 * K - 6)) & 0x3FC0u;
    return _mm512_loadu_si512((const char *) table + off);
}

// 8 lookups (codes of q, tables `stride` entries apart) into the four chains
template <int STRIDE>
inline void lookup8(const int16_t * t, uint64_t q, __m512i & s0, __m512i & s1, __m512i & s2, __m512i & s3) {
    s0 = _mm512_add_epi16(s0, entry8<0>(t + 0 * STRIDE * TILE, q));
    s1 = _mm512_add_epi16(s1, entry8<1>(t + 1 * STRIDE * TILE, q));
    s2 = _mm512_add_epi16(s2, entry8<2>(t + 2 * STRIDE * TILE, q));
    s3 = _mm512_add_epi16(s3, entry8<3>(t + 3 * STRIDE * TILE, q));
    s0 = _mm512_add_epi16(s0, entry8<4>(t + 4 * STRIDE * TILE, q));
    s1 = _mm512_add_epi16(s1, entry8<5>(t + 5 * STRIDE * TILE, q));
    s2 = _mm512_add_epi16(s2, entry8<6>(t + 6 * STRIDE * TILE, q));
    s3 = _mm512_add_epi16(s3, entry8<7>(t + 7 * STRIDE * TILE, q));
    keep_apart(s0, s1, s2, s3);
}

template <layout KIND>
inline __m512i block_sum(const uint8_t * codes, const int16_t * t) {
    // four independent chains (kept apart: GCC would reassociate them into one chain of
    // dependent vpaddw); fully unrolled so every table offset is an immediate
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    uint64_t q[8];
    std::memcpy(q, codes, KIND == layout::i2 ? 64 : 48);
    if constexpr (KIND == layout::i2) {
#pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            lookup8<81>(t + i * 8 * 81 * TILE, q[i], s0, s1, s2, s3);
        }
    } else {
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) {
            lookup8<243>(t + i * 8 * 243 * TILE, q[i], s0, s1, s2, s3);
        }
        uint32_t tail;
        std::memcpy(&tail, codes + 48, 4);
        const int16_t * t4 = t + 48 * 243 * TILE;
        s0 = _mm512_add_epi16(s0, entry8<0>(t4 + 0 * 81 * TILE, tail));
        s1 = _mm512_add_epi16(s1, entry8<1>(t4 + 1 * 81 * TILE, tail));
        s2 = _mm512_add_epi16(s2, entry8<2>(t4 + 2 * 81 * TILE, tail));
        s3 = _mm512_add_epi16(s3, entry8<3>(t4 + 3 * 81 * TILE, tail));
    }
    return _mm512_add_epi16(_mm512_add_epi16(s0, s1), _mm512_add_epi16(s2, s3));
}

template <layout KIND>
void lut_accumulate_t(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                      const int16_t * tables, const float * act_scale, float * acc) {
    constexpr layout_info li = info_of(KIND);
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r) + b0 * li.code_bytes;
        const scale_run scales = w.block_scales(row0 + r) + b0;
        float * out = acc + r * TILE;
        x86::prefetch_step_codes(w, row0 + r, b0, kb, li.code_bytes);
        __m512 f0 = _mm512_loadu_ps(out), f1 = _mm512_loadu_ps(out + 16);
        for (int64_t b = 0; b < kb; ++b, codes += li.code_bytes) {
            const __m512i s = block_sum<KIND>(codes, tables + b * li.table_entries * TILE);
            const __m512 ws = _mm512_set1_ps(scales[b]);
            const __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(s)));
            const __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(s, 1)));
            f0 = _mm512_fmadd_ps(lo, _mm512_mul_ps(ws, _mm512_loadu_ps(act_scale + b * TILE)), f0);
            f1 = _mm512_fmadd_ps(hi, _mm512_mul_ps(ws, _mm512_loadu_ps(act_scale + b * TILE + 16)), f1);
        }
        _mm512_storeu_ps(out, f0);
        _mm512_storeu_ps(out + 16, f1);
    }
}

void lut_accumulate(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                    const int16_t * tables, const float * act_scale, int, float * acc) {
    if (w.kind == layout::i2) {
        lut_accumulate_t<layout::i2>(w, row0, nrows, b0, kb, tables, act_scale, acc);
    } else {
        lut_accumulate_t<layout::i1>(w, row0, nrows, b0, kb, tables, act_scale, acc);
    }
}

#if defined(__AVX512VBMI__) && defined(__AVX512VNNI__)

// digit j (0..2) of every code 0..255 (codes above 242 never occur); the kernels use codes 0..127
// of digits 0..3 as vpermi2b tables (two zmm each); constexpr, so no load-time code compiled for
// AVX-512 runs when ggml loads this library only to score it (see kernels_scalar.cpp's trit_table)
struct digit_tables {
    alignas(64) uint8_t d[5][256];
    constexpr digit_tables() : d() {
        for (int c = 0; c < 256; ++c) {
            int code = c;
            for (int j = 0; j < 5; ++j, code /= 3) {
                d[j][c] = (uint8_t) (c < 243 ? code % 3 : 0);
            }
        }
    }
};
constexpr digit_tables DIGITS;

// per 64 codes: digit j of each code, from tables in registers
inline __m512i digits_lo(__m512i codes, const __m512i * tab) {  // codes < 128 (bit 7 ignored)
    return _mm512_permutex2var_epi8(tab[0], codes, tab[1]);
}

template <layout KIND, int NT>
void dot_t(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_K * const * acts,
           const uint8_t * prep, size_t prep_stride, float * out, int64_t out_stride) {
    constexpr layout_info li = info_of(KIND);
    constexpr int D = KIND == layout::i2 ? 4 : 5;  // digit vectors per block
    constexpr size_t PB = (D + 1) * 64;            // prepared bytes per block
    __m512i lo[4][2];  // digit j of codes 0..127 (only 0..80 occur after the I1_V split)
    for (int j = 0; j < 4; ++j) {
        lo[j][0] = _mm512_load_si512(DIGITS.d[j]);
        lo[j][1] = _mm512_load_si512(DIGITS.d[j] + 64);
    }
    const __mmask64 load_mask = KIND == layout::i2 ? ~(__mmask64) 0 : (((__mmask64) 1 << li.code_bytes) - 1);
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r);
        const scale_run scales = w.block_scales(row0 + r);
        __m512 f[NT];
        for (int n = 0; n < NT; ++n) f[n] = _mm512_setzero_ps();
        for (int64_t b = 0; b < w.blocks; ++b, codes += li.code_bytes) {
            _mm_prefetch((const char *) codes + 4096, _MM_HINT_T0);
            const __m512i c = KIND == layout::i2 ? _mm512_loadu_si512(codes) : _mm512_maskz_loadu_epi8(load_mask, codes);
            __m512i dg[D];
            if constexpr (KIND == layout::i2) {
                for (int j = 0; j < D; ++j) dg[j] = digits_lo(c, lo[j]);
            } else {
                // digit 4 = code / 81 by two compares; the rest (code mod 81) from the 4-digit tables
                const __m512i k81 = _mm512_set1_epi8(81), one = _mm512_set1_epi8(1);
                const __mmask64 ge81 = _mm512_cmpge_epu8_mask(c, k81);
                const __mmask64 ge162 = _mm512_cmpge_epu8_mask(c, _mm512_set1_epi8((char) 162));
                __m512i low = _mm512_mask_sub_epi8(c, ge81, c, k81);
                low = _mm512_mask_sub_epi8(low, ge162, low, k81);
                const __m512i d4 = _mm512_maskz_mov_epi8(ge81, one);
                dg[4] = _mm512_mask_add_epi8(d4, ge162, d4, one);
                for (int j = 0; j < 4; ++j) dg[j] = digits_lo(low, lo[j]);
            }
            for (int n = 0; n < NT; ++n) {
                const uint8_t * a = prep + n * prep_stride + b * PB;
                __m512i s = _mm512_loadu_si512(a + D * 64);  // -sum(a) in lane 0
                for (int j = 0; j < D; ++j) {
                    s = _mm512_dpbusd_epi32(s, dg[j], _mm512_loadu_si512(a + j * 64));
                }
                f[n] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(scales[b] * acts[n][b].d), f[n]);
            }
        }
        for (int n = 0; n < NT; ++n) out[r * out_stride + n] = _mm512_reduce_add_ps(f[n]);
    }
}

template <layout KIND>
void dot_k(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_K * const * acts,
           const uint8_t * prep, size_t ps, int nt, float * out, int64_t os) {
    // tokens in groups of up to 4 (accumulators in registers), the codes decoded once per group
    for (int n0 = 0; n0 < nt; n0 += 4) {
        const int m = nt - n0 < 4 ? nt - n0 : 4;
        const uint8_t * p = prep + n0 * ps;
        switch (m) {
            case 1: dot_t<KIND, 1>(w, row0, nrows, acts + n0, p, ps, out + n0, os); break;
            case 2: dot_t<KIND, 2>(w, row0, nrows, acts + n0, p, ps, out + n0, os); break;
            case 3: dot_t<KIND, 3>(w, row0, nrows, acts + n0, p, ps, out + n0, os); break;
            default: dot_t<KIND, 4>(w, row0, nrows, acts + n0, p, ps, out + n0, os); break;
        }
    }
}

void dot(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_K * const * acts,
         const uint8_t * prep, size_t ps, int nt, float * out, int64_t os) {
    if (w.kind == layout::i2) {
        dot_k<layout::i2>(w, row0, nrows, acts, prep, ps, nt, out, os);
    } else {
        dot_k<layout::i1>(w, row0, nrows, acts, prep, ps, nt, out, os);
    }
}

#endif  // VBMI && VNNI

}  // namespace

const kernel_set * avx512_kernels() {
    static const kernel_set set = [] {
#if defined(__AVX512VBMI__) && defined(__AVX512VNNI__)
        kernel_set k = {"avx512", TILE, LUT_MIN_N, dot, build_tables, lut_accumulate, x86::prep_bytes, x86::prepare};
#else
        // without VBMI/VNNI the dot path is AVX2's (same prepared activations)
        kernel_set k = {"avx512", TILE, LUT_MIN_N, x86::avx2_dot, build_tables, lut_accumulate, x86::prep_bytes, x86::prepare};
#endif
        k.quantize_q8_K = x86::quantize_q8_K;  // AVX2's: ggml's on x86 is the scalar reference
        return k;
    }();
    return &set;
}

}  // namespace veclut

#else

namespace veclut {
const kernel_set * avx512_kernels() { return nullptr; }  // not compiled for this ISA
}  // namespace veclut

#endif
