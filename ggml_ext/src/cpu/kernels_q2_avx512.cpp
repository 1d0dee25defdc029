// AVX-512 kernels of the 2-bit layout (F/BW/VL; VNNI for the dot path where the build has it).
//
// Vector LUT: a tile is 32 tokens, so one table entry (32 x int16) is one zmm and one code
// selects it with one vpaddw from memory, as in the ternary kernels. A 64-block has 16 tables of
// 256 entries (256 KiB: L2-resident, like I2_V's 331 KiB per 256-block); its two halves have
// their own Q8_0 scales, so each half is summed in its own pair of chains and widened to float
// separately; the offset enters once per block as d * o times the token's dy0 * s0 + dy1 * s1.
//
// Overflow bound: as in kernels_q2_scalar.cpp, a half-block sum is at most 8 * 4 * 3 * 127 =
// 12192 in magnitude, so int16 chains cannot overflow.
//
// Dot path: the packed order (packed.h) makes the 64 codes of a block, broadcast per half and
// shifted by 0, 2, 4, 6 per qword, one byte each in natural weight order, so they multiply the
// Q8_0 bytes as they are (vpdpbusd, or vpmaddubsw + vpmaddwd without VNNI: 3 * 127 * 2 fits int16).
// The activations are prepared once per call (q2_prepare_all): per block one load of 64 values,
// one of 16 half scales, and the offset term is a separate dot product per row.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12: _mm512_undefined_* inside the intrinsics headers
#endif

#include "kernels_q2.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)

#include "kernels_x86.h"

#include "ggml-impl.h"

#include <immintrin.h>

#include <cstring>

namespace veclut {

namespace {

constexpr int TILE = 32;
constexpr int GROUP = 256 * TILE;  // int16 per table
// Switch-over from the dot path to the vector LUT, measured with bench-veclut (Zen 4, 4096x4096
// and 14336x4096, 1 and 2 threads, GOPS per thread): dot ~87-90 at N = 10-16; LUT 59-69 / 69-85 /
// 83-95 / ~105 at N = 10 / 12 / 14 / 16.
constexpr int LUT_MIN_N = 16;

void build_tables(const block_q8_0 * const * acts, int64_t b, int nt, int16_t * tables, float * act) {
    alignas(64) int16_t col[64 * TILE];  // activations token-minor: col[k * TILE + n]
    gather_q8_0<TILE>(acts, b, nt, col, act);
    for (int g = 0; g < 16; ++g) {  // weights 32h + i + 8j of the packed order
        const int16_t * x = col + (32 * (g / 8) + g % 8) * TILE;
        int16_t * t = tables + g * GROUP;
        _mm512_store_si512(t, _mm512_setzero_si512());
        for (int j = 0, span = 1; j < 4; ++j, span *= 4) {
            const __m512i a1 = _mm512_load_si512(x + 8 * j * TILE);
            const __m512i a2 = _mm512_add_epi16(a1, a1);
            const __m512i a3 = _mm512_add_epi16(a2, a1);
            for (int c = 0; c < span; ++c) {
                const __m512i e = _mm512_load_si512(t + c * TILE);
                _mm512_store_si512(t + (c + span) * TILE, _mm512_add_epi16(e, a1));
                _mm512_store_si512(t + (c + 2 * span) * TILE, _mm512_add_epi16(e, a2));
                _mm512_store_si512(t + (c + 3 * span) * TILE, _mm512_add_epi16(e, a3));
            }
        }
    }
}

inline void keep_apart(__m512i & a, __m512i & b, __m512i & c, __m512i & d) {
    __asm__("" : "+v"(a), "+v"(b), "+v"(c), "+v"(d));
}

// entry of byte K of q (8 codes at once) in table K: its byte offset code * 64 by shift and mask
template <int K>
inline __m512i entry8(const int16_t * t, uint64_t q) {
    const uint64_t off = K == 0 ? (q << 6) & 0x3FC0u : (q >> (8 * K - 6)) & 0x3FC0u;
    return _mm512_load_si512((const char *) (t + K * GROUP) + off);
}

// sum of one half (8 codes, 8 tables) in two chains
inline void half_sum(const int16_t * t, uint64_t q, __m512i & s0, __m512i & s1) {
    s0 = _mm512_add_epi16(s0, entry8<0>(t, q));
    s1 = _mm512_add_epi16(s1, entry8<1>(t, q));
    s0 = _mm512_add_epi16(s0, entry8<2>(t, q));
    s1 = _mm512_add_epi16(s1, entry8<3>(t, q));
    s0 = _mm512_add_epi16(s0, entry8<4>(t, q));
    s1 = _mm512_add_epi16(s1, entry8<5>(t, q));
    s0 = _mm512_add_epi16(s0, entry8<6>(t, q));
    s1 = _mm512_add_epi16(s1, entry8<7>(t, q));
}

inline __m512 lo_ps(__m512i s) { return _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_castsi512_si256(s))); }
inline __m512 hi_ps(__m512i s) { return _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(s, 1))); }

void lut_accumulate(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                    const int16_t * tables, const float * act, int, float * acc) {
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r) + b0 * 16;
        const float * s = w.row_scales(row0 + r) + 2 * b0;
        float * out = acc + r * TILE;
        x86::prefetch_step_codes(w, row0 + r, b0, kb, 16);
        __m512 f0 = _mm512_loadu_ps(out), f1 = _mm512_loadu_ps(out + 16);
        for (int64_t b = 0; b < kb; ++b, codes += 16, s += 2) {
            const int16_t * t = tables + b * 16 * GROUP;
            uint64_t q[2];
            std::memcpy(q, codes, 16);
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, c0 = a0, c1 = a0;
            half_sum(t, q[0], a0, a1);
            half_sum(t + 8 * GROUP, q[1], c0, c1);
            keep_apart(a0, a1, c0, c1);  // four independent chains (GCC would merge them)
            const __m512i h0 = _mm512_add_epi16(a0, a1), h1 = _mm512_add_epi16(c0, c1);
            const float * A = act + b * Q2_ACT_FLOATS * TILE;
            const __m512 d = _mm512_set1_ps(s[0]), m = _mm512_set1_ps(s[1]);
            f0 = _mm512_fmadd_ps(m, _mm512_loadu_ps(A + 2 * TILE), f0);
            f1 = _mm512_fmadd_ps(m, _mm512_loadu_ps(A + 2 * TILE + 16), f1);
            f0 = _mm512_fmadd_ps(lo_ps(h0), _mm512_mul_ps(d, _mm512_loadu_ps(A)), f0);
            f1 = _mm512_fmadd_ps(hi_ps(h0), _mm512_mul_ps(d, _mm512_loadu_ps(A + 16)), f1);
            f0 = _mm512_fmadd_ps(lo_ps(h1), _mm512_mul_ps(d, _mm512_loadu_ps(A + TILE)), f0);
            f1 = _mm512_fmadd_ps(hi_ps(h1), _mm512_mul_ps(d, _mm512_loadu_ps(A + TILE + 16)), f1);
        }
        _mm512_storeu_ps(out, f0);
        _mm512_storeu_ps(out + 16, f1);
    }
}

// the 64 codes of a block, one per byte, in natural weight order
inline __m512i expand(const uint8_t * codes) {
    const __m512i v = _mm512_permutexvar_epi64(_mm512_set_epi64(1, 1, 1, 1, 0, 0, 0, 0),
                                               _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *) codes)));
    return _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_set_epi64(6, 4, 2, 0, 6, 4, 2, 0)), _mm512_set1_epi8(3));
}

// int32 sums of 4 products u8 x s8 per lane: lanes 0-7 the first half, 8-15 the second
inline __m512i dot4(__m512i u, __m512i s) {
#if defined(__AVX512VNNI__)
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
#else
    return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
#endif
}

// sum over the row's blocks of (d, d * o) . (0, S): the offset term of TN tokens
template <int TN>
inline void offset_terms(const float * s, const uint8_t * prep, size_t stride, int64_t blocks, float * sums) {
    const int64_t n = 2 * blocks;
    for (int i = 0; i < TN; ++i) {
        const float * pairs = (const float *) (prep + i * stride + blocks * Q2_PREP_BLOCK);
        __m512 acc = _mm512_setzero_ps();
        for (int64_t k = 0; k < n; k += 16) {
            const __mmask16 m = n - k >= 16 ? 0xFFFF : (__mmask16) ((1u << (n - k)) - 1);
            acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, s + k), _mm512_maskz_loadu_ps(m, pairs + k), acc);
        }
        sums[i] = _mm512_reduce_add_ps(acc);
    }
}

// one row, TN tokens whose prepared activations start at prep (stride apart)
template <int TN>
inline void row_dot(const uint8_t * codes, const float * s, int64_t blocks, const uint8_t * prep, size_t stride,
                    float * out) {
    __m512 acc[TN];
    for (int i = 0; i < TN; ++i) {
        acc[i] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < blocks; ++b) {
        const __m512i v = expand(codes + 16 * b);
        const __m512 d = _mm512_set1_ps(s[2 * b]);
        for (int i = 0; i < TN; ++i) {
            const uint8_t * x = prep + i * stride + b * Q2_PREP_BLOCK;
            const __m512 q = _mm512_cvtepi32_ps(dot4(v, _mm512_load_si512(x)));
            acc[i] = _mm512_fmadd_ps(q, _mm512_mul_ps(d, _mm512_load_ps((const float *) (x + 64))), acc[i]);
        }
    }
    float offsets[TN];
    offset_terms<TN>(s, prep, stride, blocks, offsets);
    for (int i = 0; i < TN; ++i) {
        out[i] = _mm512_reduce_add_ps(acc[i]) + offsets[i];
    }
}

void dot(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_0 * const * acts,
         int nt, float * out, int64_t out_stride) {
    q2_dot_rows(w, row0, nrows, q2_prepare_all(acts, nt, w.blocks), nt, out, out_stride,
                [](auto tn, auto... args) { row_dot<decltype(tn)::value>(args...); });
}

}  // namespace

const q2_kernel_set * q2_avx512_kernels() {
    static const q2_kernel_set set = {"avx512", TILE, LUT_MIN_N, dot, build_tables, lut_accumulate};
    return &set;
}

}  // namespace veclut

#else

namespace veclut {
const q2_kernel_set * q2_avx512_kernels() { return nullptr; }
}  // namespace veclut

#endif
