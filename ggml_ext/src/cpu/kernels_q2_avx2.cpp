// AVX2 kernels of the 2-bit layout: the AVX-512 ones (kernels_q2_avx512.cpp) at half the width;
// and of the 1-bit layout (q1): a byte of bits indexes a 256-entry table of 8 activations' sums,
// and the dot path expands a 32-bit word to 32 bytes 0/1.
// Vector LUT: a tile is 16 tokens, one table entry (16 x int16) is one ymm; 16 tables of 256
// entries per 64-block (128 KiB). Overflow bound as in kernels_q2_scalar.cpp: a half-block sum is
// at most 12192 in magnitude. Dot path: a half's 8 code bytes broadcast and shifted by 0, 2, 4, 6
// per qword give its 32 codes in natural order, multiplied with the Q8_0 bytes by vpmaddubsw
// (pairs at most 2 * 3 * 127 = 762, no saturation) and vpmaddwd, against activations prepared
// once per call (q2_prepare_all in kernels_q2.h).

#include "kernels_q2.h"

#if defined(__AVX2__) && defined(__FMA__)

#include "kernels_x86.h"

#include "ggml-impl.h"

#include <immintrin.h>

#include <cstring>

namespace veclut {

namespace {

constexpr int TILE = 16;
constexpr int GROUP = 256 * TILE;
// Switch-over from the dot path to the vector LUT, measured with bench-veclut (AVX2 set on Zen 4,
// 4096x4096, 1 thread, GOPS): dot 84-92 at N = 4-64; LUT 47 / 63 / 74 / 69 / 100 at N = 12 / 16 /
// 32 / 48 / 64 (127 at 256).
constexpr int LUT_MIN_N = 64;
// q1: its tables take 8 weights per lookup and win from N = 16 (docs/q1_0.md has the figures)
constexpr int LUT_MIN_N1 = 16;

void build_tables(const block_q8_0 * const * acts, int64_t b, int nt, int16_t * tables, float * act) {
    alignas(32) int16_t col[64 * TILE];
    gather_q8_0<TILE>(acts, b, nt, col, act);
    for (int g = 0; g < 16; ++g) {  // weights 32h + i + 8j of the packed order
        const int16_t * x = col + (32 * (g / 8) + g % 8) * TILE;
        int16_t * t = tables + g * GROUP;
        _mm256_store_si256((__m256i *) t, _mm256_setzero_si256());
        for (int j = 0, span = 1; j < 4; ++j, span *= 4) {
            const __m256i a1 = _mm256_load_si256((const __m256i *) (x + 8 * j * TILE));
            const __m256i a2 = _mm256_add_epi16(a1, a1);
            const __m256i a3 = _mm256_add_epi16(a2, a1);
            for (int c = 0; c < span; ++c) {
                const __m256i e = _mm256_load_si256((const __m256i *) (t + c * TILE));
                _mm256_store_si256((__m256i *) (t + (c + span) * TILE), _mm256_add_epi16(e, a1));
                _mm256_store_si256((__m256i *) (t + (c + 2 * span) * TILE), _mm256_add_epi16(e, a2));
                _mm256_store_si256((__m256i *) (t + (c + 3 * span) * TILE), _mm256_add_epi16(e, a3));
            }
        }
    }
}

// q1: 8 tables of 256 entries per 64-block (64 KiB), entry(byte) built bit by bit
void build_tables1(const block_q8_0 * const * acts, int64_t b, int nt, int16_t * tables, float * act) {
    alignas(32) int16_t col[64 * TILE];
    gather_q8_0<TILE>(acts, b, nt, col, act);
    for (int g = 0; g < 8; ++g) {  // code byte g = 4h + c
        const int16_t * x = col + 32 * (g / 4) * TILE;
        int16_t * t = tables + g * GROUP;
        _mm256_store_si256((__m256i *) t, _mm256_setzero_si256());
        for (int bit = 0, span = 1; bit < 8; ++bit, span *= 2) {
            const __m256i a = _mm256_load_si256((const __m256i *) (x + q1_weight(g % 4, bit) * TILE));
            for (int e = 0; e < span; ++e) {
                const __m256i v = _mm256_load_si256((const __m256i *) (t + e * TILE));
                _mm256_store_si256((__m256i *) (t + (e + span) * TILE), _mm256_add_epi16(v, a));
            }
        }
    }
}

inline void keep_apart(__m256i & a, __m256i & b, __m256i & c, __m256i & d) {
    __asm__("" : "+x"(a), "+x"(b), "+x"(c), "+x"(d));
}

template <int K>
inline __m256i entry8(const int16_t * t, uint64_t q) {
    const uint64_t off = K == 0 ? (q << 5) & 0x1FE0u : (q >> (8 * K - 5)) & 0x1FE0u;  // code * 32 bytes
    return _mm256_load_si256((const __m256i *) ((const char *) (t + K * GROUP) + off));
}

inline void half_sum(const int16_t * t, uint64_t q, __m256i & s0, __m256i & s1) {
    s0 = _mm256_add_epi16(s0, entry8<0>(t, q));
    s1 = _mm256_add_epi16(s1, entry8<1>(t, q));
    s0 = _mm256_add_epi16(s0, entry8<2>(t, q));
    s1 = _mm256_add_epi16(s1, entry8<3>(t, q));
    s0 = _mm256_add_epi16(s0, entry8<4>(t, q));
    s1 = _mm256_add_epi16(s1, entry8<5>(t, q));
    s0 = _mm256_add_epi16(s0, entry8<6>(t, q));
    s1 = _mm256_add_epi16(s1, entry8<7>(t, q));
}

inline __m256 lo_ps(__m256i s) { return _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(s))); }
inline __m256 hi_ps(__m256i s) { return _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(s, 1))); }

// A 64-block's int16 half sums h0, h1 (16 tokens) added to the float sums f0, f1 for weights
// d * code + m: d * (each half's activation scale * its sum) + m * (the scaled activation sum),
// A being the floats beside the block's tables
static inline void flush_block(__m256i h0, __m256i h1, const float * A, float d, float m, __m256 & f0, __m256 & f1) {
    const __m256 dv = _mm256_set1_ps(d), mv = _mm256_set1_ps(m);
    f0 = _mm256_fmadd_ps(mv, _mm256_loadu_ps(A + 2 * TILE), f0);
    f1 = _mm256_fmadd_ps(mv, _mm256_loadu_ps(A + 2 * TILE + 8), f1);
    f0 = _mm256_fmadd_ps(lo_ps(h0), _mm256_mul_ps(dv, _mm256_loadu_ps(A)), f0);
    f1 = _mm256_fmadd_ps(hi_ps(h0), _mm256_mul_ps(dv, _mm256_loadu_ps(A + 8)), f1);
    f0 = _mm256_fmadd_ps(lo_ps(h1), _mm256_mul_ps(dv, _mm256_loadu_ps(A + TILE)), f0);
    f1 = _mm256_fmadd_ps(hi_ps(h1), _mm256_mul_ps(dv, _mm256_loadu_ps(A + TILE + 8)), f1);
}

void lut_accumulate(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                    const int16_t * tables, const float * act, int, float * acc) {
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r) + b0 * 16;
        const float * s = w.row_scales(row0 + r) + 2 * b0;
        float * out = acc + r * TILE;
        x86::prefetch_step_codes(w, row0 + r, b0, kb, 16);
        __m256 f0 = _mm256_loadu_ps(out), f1 = _mm256_loadu_ps(out + 8);
        for (int64_t b = 0; b < kb; ++b, codes += 16, s += 2) {
            const int16_t * t = tables + b * 16 * GROUP;
            uint64_t q[2];
            std::memcpy(q, codes, 16);
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, c0 = a0, c1 = a0;
            half_sum(t, q[0], a0, a1);
            half_sum(t + 8 * GROUP, q[1], c0, c1);
            keep_apart(a0, a1, c0, c1);
            const __m256i h0 = _mm256_add_epi16(a0, a1), h1 = _mm256_add_epi16(c0, c1);
            flush_block(h0, h1, act + b * Q2_ACT_FLOATS * TILE, s[0], s[1], f0, f1);
        }
        _mm256_storeu_ps(out, f0);
        _mm256_storeu_ps(out + 8, f1);
    }
}

// q1: per 64-block two halves of 4 lookups (entries bounded as in kernels_q2_scalar.cpp: 4064)
void lut_accumulate1(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                     const int16_t * tables, const float * act, int, float * acc) {
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r) + b0 * 8;
        const float * d = w.row_scales(row0 + r) + b0;
        float * out = acc + r * TILE;
        x86::prefetch_step_codes(w, row0 + r, b0, kb, 8);
        __m256 f0 = _mm256_loadu_ps(out), f1 = _mm256_loadu_ps(out + 8);
        for (int64_t b = 0; b < kb; ++b, codes += 8) {
            const int16_t * t = tables + b * 8 * GROUP;
            uint64_t q;
            std::memcpy(&q, codes, 8);
            __m256i a0 = entry8<0>(t, q), a1 = entry8<1>(t, q), c0 = entry8<4>(t, q), c1 = entry8<5>(t, q);
            a0 = _mm256_add_epi16(a0, entry8<2>(t, q));
            a1 = _mm256_add_epi16(a1, entry8<3>(t, q));
            c0 = _mm256_add_epi16(c0, entry8<6>(t, q));
            c1 = _mm256_add_epi16(c1, entry8<7>(t, q));
            keep_apart(a0, a1, c0, c1);
            const __m256i h0 = _mm256_add_epi16(a0, a1), h1 = _mm256_add_epi16(c0, c1);
            flush_block(h0, h1, act + b * Q2_ACT_FLOATS * TILE, 2.0f * d[b], -d[b], f0, f1);
        }
        _mm256_storeu_ps(out, f0);
        _mm256_storeu_ps(out + 8, f1);
    }
}

// the 32 codes of half h of a block, one per byte, in natural weight order
inline __m256i expand_half(const uint8_t * codes) {
    uint64_t q;
    std::memcpy(&q, codes, 8);
    const __m256i v = _mm256_srlv_epi64(_mm256_set1_epi64x((long long) q), _mm256_set_epi64x(6, 4, 2, 0));
    return _mm256_and_si256(v, _mm256_set1_epi8(3));
}

// the 32 bits of a q1 half (one word), one per byte: byte 4l + m = bit 8m + l, i.e. weight
// Q1_PERM[4l + m] of the half (packed.h: bit 4i + j is weight 8j + i)
inline __m256i expand_bits(const uint8_t * codes) {
    uint32_t word;
    std::memcpy(&word, codes, 4);
    const __m256i v = _mm256_srlv_epi32(_mm256_set1_epi32((int) word), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_and_si256(v, _mm256_set1_epi8(1));
}

constexpr uint8_t perm_entry(int k) { return (uint8_t) (8 * ((k / 4) % 4) + 2 * (k % 4) + (k / 4) / 4); }
constexpr uint8_t Q1_PERM[32] = {
    perm_entry(0),  perm_entry(1),  perm_entry(2),  perm_entry(3),  perm_entry(4),  perm_entry(5),  perm_entry(6),  perm_entry(7),
    perm_entry(8),  perm_entry(9),  perm_entry(10), perm_entry(11), perm_entry(12), perm_entry(13), perm_entry(14), perm_entry(15),
    perm_entry(16), perm_entry(17), perm_entry(18), perm_entry(19), perm_entry(20), perm_entry(21), perm_entry(22), perm_entry(23),
    perm_entry(24), perm_entry(25), perm_entry(26), perm_entry(27), perm_entry(28), perm_entry(29), perm_entry(30), perm_entry(31),
};

inline __m256i dot4(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

inline float hsum(__m256 v) {
    const __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 y = _mm_add_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_add_ss(y, _mm_movehdup_ps(y)));
}

inline float dot_floats(const float * a, const float * b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= n; k += 8) {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
    }
    float tail = 0.0f;
    for (; k < n; ++k) {
        tail += a[k] * b[k];
    }
    return hsum(acc) + tail;
}

// How row_dot reads a row: its halves as one code per byte (values 0..3), the scale of the
// linear term, and the offset term against the prepared pairs (0, S) or sums S
struct q2_row {
    static __m256i half(const uint8_t * codes, int64_t b, int h) { return expand_half(codes + 16 * b + 8 * h); }
    static float scale(const float * s, int64_t b) { return s[2 * b]; }
    static float offset(const float * s, const float * pairs, int64_t blocks) { return dot_floats(s, pairs, 2 * blocks); }
};

// q1: d * (2 bit - 1) = 2d * bit - d
struct q1_row {
    static __m256i half(const uint8_t * codes, int64_t b, int h) { return expand_bits(codes + 8 * b + 4 * h); }
    static float scale(const float * s, int64_t b) { return 2.0f * s[b]; }
    static float offset(const float * s, const float * sums, int64_t blocks) { return -dot_floats(s, sums, blocks); }
};

// one row, TN tokens whose prepared activations (q2_prepare_all / q1_prepare_all) start at prep,
// stride apart. Each token's sum is split over CHAINS accumulators (by block parity and half), so
// that with one or two tokens the loop is not bound by the latency of one chain of FMAs.
template <typename Row, int TN>
inline void row_dot(const uint8_t * codes, const float * s, int64_t blocks, const uint8_t * prep, size_t stride,
                    float * out) {
    constexpr int CHAINS = TN == 1 ? 4 : TN == 2 ? 2 : 1;
    __m256 acc[CHAINS][TN];
    for (int c = 0; c < CHAINS; ++c) {
        for (int i = 0; i < TN; ++i) {
            acc[c][i] = _mm256_setzero_ps();
        }
    }
    auto block = [&](int64_t b, __m256 * acc0, __m256 * acc1) {
        const __m256i v0 = Row::half(codes, b, 0), v1 = Row::half(codes, b, 1);
        const __m256 d = _mm256_set1_ps(Row::scale(s, b));
        for (int i = 0; i < TN; ++i) {
            const uint8_t * x = prep + i * stride + b * Q2_PREP_BLOCK;
            const float * dy = (const float *) (x + 64);
            const __m256 q0 = _mm256_cvtepi32_ps(dot4(v0, _mm256_load_si256((const __m256i *) x)));
            const __m256 q1 = _mm256_cvtepi32_ps(dot4(v1, _mm256_load_si256((const __m256i *) (x + 32))));
            acc0[i] = _mm256_fmadd_ps(q0, _mm256_mul_ps(d, _mm256_load_ps(dy)), acc0[i]);
            acc1[i] = _mm256_fmadd_ps(q1, _mm256_mul_ps(d, _mm256_load_ps(dy + 8)), acc1[i]);
        }
    };
    int64_t b = 0;
    for (; CHAINS == 4 && b + 2 <= blocks; b += 2) {
        block(b, acc[0], acc[1 % CHAINS]);
        block(b + 1, acc[2 % CHAINS], acc[3 % CHAINS]);
    }
    for (; b < blocks; ++b) {
        block(b, acc[0], acc[(CHAINS - 1) % CHAINS]);
    }
    for (int i = 0; i < TN; ++i) {
        __m256 sum = acc[0][i];
        for (int c = 1; c < CHAINS; ++c) {
            sum = _mm256_add_ps(sum, acc[c][i]);
        }
        const float * pairs = (const float *) (prep + i * stride + blocks * Q2_PREP_BLOCK);
        out[i] = hsum(sum) + Row::offset(s, pairs, blocks);
    }
}

void dot(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_0 * const * acts,
         int nt, float * out, int64_t out_stride) {
    const uint8_t * prep = q2_prepare_all(acts, nt, w.blocks);
    q2_dot_rows(w, row0, nrows, prep, nt, out, out_stride, [](auto tn, auto... args) { row_dot<q2_row, decltype(tn)::value>(args...); });
}

void dot1(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_0 * const * acts,
          int nt, float * out, int64_t out_stride) {
    const uint8_t * prep = q1_prepare_all(acts, nt, w.blocks, Q1_PERM);
    q2_dot_rows(w, row0, nrows, prep, nt, out, out_stride, [](auto tn, auto... args) { row_dot<q1_row, decltype(tn)::value>(args...); });
}

}  // namespace

const q2_kernel_set * q2_avx2_kernels() {
    static const q2_kernel_set set = {"avx2", TILE, LUT_MIN_N, dot, build_tables, lut_accumulate,
                                      dot1, build_tables1, lut_accumulate1, LUT_MIN_N1};
    return &set;
}

}  // namespace veclut

#else

namespace veclut {
const q2_kernel_set * q2_avx2_kernels() { return nullptr; }
}  // namespace veclut

#endif
