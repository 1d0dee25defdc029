// AVX2 kernels, and the pieces every x86 set shares (kernels_x86.h).
//
// Vector LUT: a tile is 16 tokens, so one table entry (16 x int16) is one ymm register and one
// weight code selects it with a single load-and-add. Overflow bound as in kernels_scalar.cpp:
// every partial sum inside a 256-block is bounded by 256 * 127 = 32512 < 32767, and block sums
// are widened to float once per block.
//
// I2_V codes are stored nibble-split (repack writes 16h + l for code = 9h + l, h and l < 9), the
// same 2 bits per weight, so the dot path gets its digits with two masks and four vpshufb; the
// tables are indexed by that byte (144 entries per group, the 81 valid ones built).
//
// Dot path: I1_V's codes are split as code = 9h + l (h by a 16-bit multiply-high with 7282 =
// ceil(2^16 / 9), exact for codes < 32768), then each digit is one vpshufb of l or h (I1_V splits
// h again); vpmaddubsw multiplies the digits (0..2, unsigned) with the prepared activations, and
// the offset -sum(a) (digits are trit + 1) comes with the prepared data (see kernels_x86.h).
// int16 bound of the pair sums: 8 vpmaddubsw results of |2*127 + 2*127| = 508 each, 4064.

#include "kernels.h"

#if defined(__AVX2__)

#include "kernels_x86.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

namespace veclut {

namespace x86 {

size_t prep_bytes(layout kind, int64_t blocks) {
    return (size_t) blocks * (kind == layout::i2 ? 5 : 6) * 64;
}

void prepare(layout kind, const block_q8_K * act, int64_t blocks, uint8_t * out) {
    const int D = kind == layout::i2 ? 4 : 5;
    for (int64_t b = 0; b < blocks; ++b, out += (D + 1) * 64) {
        const int8_t * q = act[b].qs;
        int8_t * a = (int8_t *) out;
        std::memset(a, 0, (D + 1) * 64);
        if (kind == layout::i2) {
            for (int g = 0; g < 64; ++g) {
                for (int j = 0; j < 4; ++j) a[j * 64 + g] = q[4 * g + j];
            }
        } else {
            for (int g = 0; g < 48; ++g) {
                for (int j = 0; j < 5; ++j) a[j * 64 + g] = q[5 * g + j];
            }
            for (int t = 0; t < 4; ++t) {
                for (int j = 0; j < 4; ++j) a[j * 64 + 48 + t] = q[240 + 4 * t + j];
            }
        }
        int32_t sum = 0;
        for (int k = 0; k < QK_K; ++k) sum += q[k];
        const int32_t neg = -sum;
        std::memcpy(out + D * 64, &neg, sizeof(neg));
    }
}

// Equal to quantize_row_q8_K_ref for finite inputs by construction (a NaN becomes -128 here, 0
// there; both garbage): the same absmax (the first element of largest magnitude gives the sign;
// NaNs are skipped, as its `ax > amax` skips them), the same float product iscale * x, and
// round-to-nearest-even as its nearest_int; packs saturate at 127 as its MIN(127, v).
void quantize_q8_K(const float * x, void * vy, int64_t k) {
    auto * y = (block_q8_K *) vy;
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t i = 0; i < k / QK_K; ++i, x += QK_K) {
        __m256 vmax = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8) {
            vmax = _mm256_max_ps(_mm256_and_ps(abs_mask, _mm256_loadu_ps(x + j)), vmax);  // NaN -> keeps vmax
        }
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        const float amax = _mm_cvtss_f32(m);
        if (amax == 0.0f) {
            std::memset(&y[i], 0, sizeof(block_q8_K));
            continue;
        }
        int first = 0;
        for (int j = 0; j < QK_K; j += 8) {
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(abs_mask, _mm256_loadu_ps(x + j)),
                                                             _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (hit) {
                first = j + __builtin_ctz((unsigned) hit);
                break;
            }
        }
        const float iscale = -127.f / x[first];
        const __m256 s = _mm256_set1_ps(iscale);
        for (int j = 0; j < QK_K; j += 32) {
            __m256i v[4];
            for (int u = 0; u < 4; ++u) {
                v[u] = _mm256_cvtps_epi32(_mm256_mul_ps(s, _mm256_loadu_ps(x + j + 8 * u)));
            }
            for (int u = 0; u < 4; u += 2) {  // two bsums of 16
                const __m256i t = _mm256_add_epi32(v[u], v[u + 1]);
                __m128i h = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
                h = _mm_hadd_epi32(h, h);
                h = _mm_hadd_epi32(h, h);
                y[i].bsums[(j + 8 * u) / 16] = (int16_t) _mm_cvtsi128_si32(h);
            }
            const __m256i q = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
            _mm256_storeu_si256((__m256i *) (y[i].qs + j), _mm256_permutevar8x32_epi32(q, order));
        }
        y[i].d = 1 / iscale;
    }
}

namespace {

// d[0], d[1] = the two base-3 digits of each byte of v (bytes below 9)
inline void digits_below_9(__m256i v, __m256i * d) {
    const __m256i mod3 = _mm256_setr_epi8(0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0,
                                          0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0);
    const __m256i div3 = _mm256_setr_epi8(0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5,
                                          0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5);
    d[0] = _mm256_shuffle_epi8(mod3, v);
    d[1] = _mm256_shuffle_epi8(div3, v);
}

// digits of 32 I2_V codes stored nibble-split (16h + l): d[0..4)
inline void digits_nibbles(__m256i c, __m256i * d) {
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    digits_below_9(_mm256_and_si256(c, nibble), d);
    digits_below_9(_mm256_and_si256(_mm256_srli_epi16(c, 4), nibble), d + 2);
}

// digits of 32 codes: d[0..D)
template <int D>
inline void digits(__m256i c, __m256i * d) {
    const __m256i m9 = _mm256_set1_epi16(7282);
    const __m256i he = _mm256_mulhi_epu16(_mm256_and_si256(c, _mm256_set1_epi16(0xFF)), m9);
    const __m256i ho = _mm256_mulhi_epu16(_mm256_srli_epi16(c, 8), m9);
    __m256i h = _mm256_or_si256(he, _mm256_slli_epi16(ho, 8));  // code / 9 (<= 28)
    const __m256i l = _mm256_sub_epi8(c, _mm256_add_epi8(_mm256_slli_epi16(h, 3), h));  // h * 8 < 256: no spill
    digits_below_9(l, d);
    if constexpr (D == 5) {  // h up to 26 (28 for the bytes past a block, whose activations are 0)
        const __m256i ge9 = _mm256_cmpgt_epi8(h, _mm256_set1_epi8(8));
        const __m256i ge18 = _mm256_cmpgt_epi8(h, _mm256_set1_epi8(17));
        const __m256i nine = _mm256_set1_epi8(9);
        d[4] = _mm256_sub_epi8(_mm256_setzero_si256(), _mm256_add_epi8(ge9, ge18));
        h = _mm256_sub_epi8(h, _mm256_add_epi8(_mm256_and_si256(ge9, nine), _mm256_and_si256(ge18, nine)));
    }
    digits_below_9(h, d + 2);
}

// NIBBLES: I2_V codes stored nibble-split (the AVX2 set's layout), else base-3 (the AVX-512 set's,
// which borrows this dot path when the build has no VBMI / VNNI)
template <layout KIND, int NT, bool NIBBLES>
void dot_t(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_K * const * acts,
           const uint8_t * prep, size_t prep_stride, float * out, int64_t out_stride) {
    constexpr layout_info li = info_of(KIND);
    constexpr int D = KIND == layout::i2 ? 4 : 5;
    constexpr size_t PB = (D + 1) * 64;
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i tail_mask = _mm256_setr_epi32(-1, -1, -1, -1, -1, 0, 0, 0);  // I1_V: bytes 32..51
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r);
        const scale_run scales = w.block_scales(row0 + r);
        __m256 f[NT];
        for (int n = 0; n < NT; ++n) f[n] = _mm256_setzero_ps();
        for (int64_t b = 0; b < w.blocks; ++b, codes += li.code_bytes) {
            __m256i d0[D], d1[D];
            _mm_prefetch((const char *) codes + 4096, _MM_HINT_T0);
            if constexpr (KIND == layout::i2 && NIBBLES) {
                digits_nibbles(_mm256_loadu_si256((const __m256i *) codes), d0);
                digits_nibbles(_mm256_loadu_si256((const __m256i *) (codes + 32)), d1);
            } else {
                digits<D>(_mm256_loadu_si256((const __m256i *) codes), d0);
                digits<D>(KIND == layout::i2 ? _mm256_loadu_si256((const __m256i *) (codes + 32))
                                             : _mm256_maskload_epi32((const int *) (codes + 32), tail_mask), d1);
            }
            for (int n = 0; n < NT; ++n) {
                const uint8_t * a = prep + n * prep_stride + b * PB;
                __m256i s16 = _mm256_setzero_si256();
                for (int j = 0; j < D; ++j) {
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(d0[j], _mm256_loadu_si256((const __m256i *) (a + j * 64))));
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(d1[j], _mm256_loadu_si256((const __m256i *) (a + j * 64 + 32))));
                }
                const __m256i s = _mm256_add_epi32(_mm256_madd_epi16(s16, ones), _mm256_loadu_si256((const __m256i *) (a + D * 64)));
                f[n] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(scales[b] * acts[n][b].d), f[n]);
            }
        }
        for (int n = 0; n < NT; ++n) {
            const __m128 h = _mm_add_ps(_mm256_castps256_ps128(f[n]), _mm256_extractf128_ps(f[n], 1));
            const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
            out[r * out_stride + n] = _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
        }
    }
}

template <layout KIND, bool NIBBLES>
void dot_k(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_K * const * acts,
           const uint8_t * prep, size_t ps, int nt, float * out, int64_t os) {
    for (int n0 = 0; n0 < nt; n0 += 4) {
        const int m = nt - n0 < 4 ? nt - n0 : 4;
        const uint8_t * p = prep + n0 * ps;
        switch (m) {
            case 1: dot_t<KIND, 1, NIBBLES>(w, row0, nrows, acts + n0, p, ps, out + n0, os); break;
            case 2: dot_t<KIND, 2, NIBBLES>(w, row0, nrows, acts + n0, p, ps, out + n0, os); break;
            case 3: dot_t<KIND, 3, NIBBLES>(w, row0, nrows, acts + n0, p, ps, out + n0, os); break;
            default: dot_t<KIND, 4, NIBBLES>(w, row0, nrows, acts + n0, p, ps, out + n0, os); break;
        }
    }
}

}  // namespace

void avx2_dot(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_K * const * acts,
              const uint8_t * prep, size_t ps, int nt, float * out, int64_t os) {
    if (w.kind == layout::i2) {
        dot_k<layout::i2, false>(w, row0, nrows, acts, prep, ps, nt, out, os);
    } else {
        dot_k<layout::i1, false>(w, row0, nrows, acts, prep, ps, nt, out, os);
    }
}

void avx2_dot_nibbles(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_K * const * acts,
                      const uint8_t * prep, size_t ps, int nt, float * out, int64_t os) {
    if (w.kind == layout::i2) {
        dot_k<layout::i2, true>(w, row0, nrows, acts, prep, ps, nt, out, os);
    } else {
        dot_k<layout::i1, true>(w, row0, nrows, acts, prep, ps, nt, out, os);
    }
}

}  // namespace x86

namespace {

constexpr int TILE = 16;
// Switch-over from the dot path to the vector LUT, measured with bench-veclut (AVX2 set on Zen 4,
// 4096x4096, 1 thread): dot ~160 GOPS (I2_V) / ~132 (I1_V) from N = 4 on; LUT 137 / 144 at
// N = 12, 182 / 211 at N = 16.
constexpr int LUT_MIN_N = 12;

inline __m256i ld(const int16_t * p) { return _mm256_loadu_si256((const __m256i *) p); }
inline void st(int16_t * p, __m256i v) { _mm256_storeu_si256((__m256i *) p, v); }

// Activations of block b for nt tokens, transposed and widened: col[k * TILE + n] (zero for
// n >= nt). 16 x 16 bytes at a time, by unpacking pairs, quads, octets, then halves of tokens.
void transpose_acts(const block_q8_K * const * acts, int64_t b, int nt, int16_t * col) {
    for (int k0 = 0; k0 < QK_K; k0 += 16) {
        __m128i x[16], p[8][2], q[4][4], r[2][8];
        for (int n = 0; n < TILE; ++n) {
            x[n] = n < nt ? _mm_loadu_si128((const __m128i *) (acts[n][b].qs + k0)) : _mm_setzero_si128();
        }
        for (int i = 0; i < 8; ++i) {  // p[i][h]: tokens 2i, 2i+1 at k = 8h .. 8h+7
            p[i][0] = _mm_unpacklo_epi8(x[2 * i], x[2 * i + 1]);
            p[i][1] = _mm_unpackhi_epi8(x[2 * i], x[2 * i + 1]);
        }
        for (int i = 0; i < 4; ++i) {  // q[i][c]: tokens 4i .. 4i+3 at k = 4c .. 4c+3
            for (int h = 0; h < 2; ++h) {
                q[i][2 * h] = _mm_unpacklo_epi16(p[2 * i][h], p[2 * i + 1][h]);
                q[i][2 * h + 1] = _mm_unpackhi_epi16(p[2 * i][h], p[2 * i + 1][h]);
            }
        }
        for (int i = 0; i < 2; ++i) {  // r[i][e]: tokens 8i .. 8i+7 at k = 2e, 2e+1
            for (int c = 0; c < 4; ++c) {
                r[i][2 * c] = _mm_unpacklo_epi32(q[2 * i][c], q[2 * i + 1][c]);
                r[i][2 * c + 1] = _mm_unpackhi_epi32(q[2 * i][c], q[2 * i + 1][c]);
            }
        }
        for (int e = 0; e < 8; ++e) {  // all 16 tokens at k = 2e and 2e + 1
            st(col + (k0 + 2 * e) * TILE, _mm256_cvtepi8_epi16(_mm_unpacklo_epi64(r[0][e], r[1][e])));
            st(col + (k0 + 2 * e + 1) * TILE, _mm256_cvtepi8_epi16(_mm_unpackhi_epi64(r[0][e], r[1][e])));
        }
    }
}

// One group's table: entry(code) = sum_j (digit_j - 1) * a_j, digit by digit (one add per entry).
inline void build_group(const int16_t * col, int width, int16_t * t) {
    __m256i a[5];
    __m256i base = _mm256_setzero_si256();
    for (int j = 0; j < width; ++j) {
        a[j] = ld(col + j * TILE);
        base = _mm256_sub_epi16(base, a[j]);
    }
    st(t, base);
    int span = 1;
    for (int j = 0; j < width; ++j, span *= 3) {
        const __m256i a2 = _mm256_add_epi16(a[j], a[j]);
        for (int c = 0; c < span; ++c) {
            const __m256i e = ld(t + c * TILE);
            st(t + (c + span) * TILE, _mm256_add_epi16(e, a[j]));
            st(t + (c + 2 * span) * TILE, _mm256_add_epi16(e, a2));
        }
    }
}

// The 9 sums of two activations' (digit - 1) multiples: out[d0 + 3 d1] = (d0 - 1) x + (d1 - 1) y.
inline void pair_sums(__m256i x, __m256i y, __m256i * out) {
    const __m256i zero = _mm256_setzero_si256();
    const __m256i xs[3] = {_mm256_sub_epi16(zero, x), zero, x}, ys[3] = {_mm256_sub_epi16(zero, y), zero, y};
    for (int d1 = 0; d1 < 3; ++d1) {
        for (int d0 = 0; d0 < 3; ++d0) {
            out[d0 + 3 * d1] = _mm256_add_epi16(xs[d0], ys[d1]);
        }
    }
}

// One I2_V group's table in nibble order: entry(16h + l) = sum of activations 0, 1 by l's digits
// and 2, 3 by h's; entries with a nibble above 8 are never read and not written.
inline void build_group_nibbles(const int16_t * col, int16_t * t) {
    __m256i lo[9], hi[9];
    pair_sums(ld(col), ld(col + TILE), lo);
    pair_sums(ld(col + 2 * TILE), ld(col + 3 * TILE), hi);
    for (int h = 0; h < 9; ++h) {
        for (int l = 0; l < 9; ++l) {
            st(t + (16 * h + l) * TILE, _mm256_add_epi16(hi[h], lo[l]));
        }
    }
}

constexpr int I2_GROUP_ENTRIES = 16 * 8 + 9;  // nibble-split bytes 0 .. 16 * 8 + 8

// code -> stored byte for I2_V (the set's i2_code_map)
struct nibble_map {
    uint8_t byte[81];
    constexpr nibble_map() : byte() {
        for (int c = 0; c < 81; ++c) byte[c] = (uint8_t) (16 * (c / 9) + c % 9);
    }
};
constexpr nibble_map NIBBLES;

void build_tables(layout kind, const block_q8_K * const * acts, int64_t b, int nt, int16_t * tables, float * act_scale) {
    alignas(64) int16_t col[QK_K * TILE];
    transpose_acts(acts, b, nt, col);
    const layout_info li = info_of(kind);
    int16_t * t = tables;
    for (int g = 0; g < li.groups5; ++g, t += 243 * TILE) {
        build_group(col + 5 * g * TILE, 5, t);
    }
    if (kind == layout::i2) {
        for (int g = 0; g < li.groups4; ++g, t += I2_GROUP_ENTRIES * TILE) {
            build_group_nibbles(col + 4 * g * TILE, t);
        }
    }
    for (int g = 0; kind == layout::i1 && g < li.groups4; ++g, t += 81 * TILE) {
        build_group(col + (5 * li.groups5 + 4 * g) * TILE, 4, t);
    }
    for (int n = 0; n < TILE; ++n) {
        act_scale[n] = n < nt ? acts[n][b].d : 0.0f;
    }
}

// Lookups, group-major: a block's tables (64 x 81 x 32 B = 166 KiB for I2_V) do not fit in L1,
// so a row-by-row walk (every row touching every table) misses L1 on nearly every lookup.
// Instead the rows of a call are walked once per pass of a few groups whose tables fit in L1
// together (I2_V: 8 x 2.6 KiB; I1_V: 3 x 7.8 KiB), adding into int16 block sums kept per row
// (ROWS x 32 B, also in L1); each table line is then reused by up to ROWS rows. The sums are
// widened to float with both scales once per row and block. Pass widths and ROWS were chosen by
// measurement (docs/speed-bounds.md).
constexpr int64_t ROWS = 128;  // rows per walk: their codes (8 KiB) and sums (4 KiB) stay in L1

template <int P, bool FIRST>
inline void group_pass(const uint8_t * codes, size_t row_stride, int64_t nr, const int16_t * const * t, int16_t * s16) {
    for (int64_t r = 0; r < nr; ++r, codes += row_stride) {
        if (FIRST) {  // rows lie a row apart, a stride the hardware prefetcher may not follow
            _mm_prefetch((const char *) codes + x86::PREFETCH_ROWS * row_stride, _MM_HINT_T0);
        }
        __m256i s = FIRST ? _mm256_setzero_si256() : ld(s16 + r * TILE);
        for (int i = 0; i < P; ++i) {
            s = _mm256_add_epi16(s, ld(t[i] + (size_t) codes[i] * TILE));
        }
        st(s16 + r * TILE, s);
    }
}

// the int16 sums of block b for nr rows: groups [g0, g0 + n) of `width`-trit tables at t0
template <int P>
inline void block_passes(const uint8_t * codes, size_t row_stride, int64_t nr, const int16_t * t0, int entries,
                         int g0, int n, bool first, int16_t * s16) {
    for (int g = g0; g < g0 + n; g += P, first = false) {
        const int16_t * t[P];
        for (int i = 0; i < P; ++i) t[i] = t0 + (size_t) (g - g0 + i) * entries * TILE;
        if (first) {
            group_pass<P, true>(codes + g, row_stride, nr, t, s16);
        } else {
            group_pass<P, false>(codes + g, row_stride, nr, t, s16);
        }
    }
}

template <layout KIND>
void lut_accumulate_t(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                      const int16_t * tables, const float * act_scale, float * acc) {
    constexpr layout_info li = info_of(KIND);
    const size_t row_stride = (size_t) w.blocks * li.code_bytes;
    alignas(32) int16_t s16[ROWS * TILE];
    for (int64_t r0 = 0; r0 < nrows; r0 += ROWS) {
        const int64_t nr = std::min(ROWS, nrows - r0);
        for (int64_t b = 0; b < kb; ++b) {
            const uint8_t * codes = w.row_codes(row0 + r0) + (b0 + b) * li.code_bytes;
            if constexpr (KIND == layout::i2) {
                const int16_t * t = tables + b * 64 * I2_GROUP_ENTRIES * TILE;
                block_passes<8>(codes, row_stride, nr, t, I2_GROUP_ENTRIES, 0, 64, true, s16);
            } else {
                const int16_t * t = tables + b * li.table_entries * TILE;
                block_passes<3>(codes, row_stride, nr, t, 243, 0, 48, true, s16);
                block_passes<4>(codes, row_stride, nr, t + 48 * 243 * TILE, 81, 48, 4, false, s16);
            }
            const float * as = act_scale + b * TILE;
            const __m256 a0 = _mm256_loadu_ps(as), a1 = _mm256_loadu_ps(as + 8);
            for (int64_t r = 0; r < nr; ++r) {
                float * out = acc + (r0 + r) * TILE;
                const __m256i s = ld(s16 + r * TILE);
                const __m256 ws = _mm256_set1_ps(w.block_scales(row0 + r0 + r)[b0 + b]);
                const __m256 lo = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(s)));
                const __m256 hi = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm256_extracti128_si256(s, 1)));
                _mm256_storeu_ps(out, _mm256_fmadd_ps(lo, _mm256_mul_ps(ws, a0), _mm256_loadu_ps(out)));
                _mm256_storeu_ps(out + 8, _mm256_fmadd_ps(hi, _mm256_mul_ps(ws, a1), _mm256_loadu_ps(out + 8)));
            }
        }
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

}  // namespace

const kernel_set * avx2_kernels() {
    static const kernel_set set = {
        "avx2", TILE, LUT_MIN_N, x86::avx2_dot_nibbles, build_tables, lut_accumulate, x86::prep_bytes, x86::prepare, ROWS,
        NIBBLES.byte, I2_GROUP_ENTRIES, x86::quantize_q8_K,
        layout::i2,  // I1_V widened: this set's I2_V kernels beat its I1_V ones at every N (docs/speed-bounds.md)
    };
    return &set;
}

}  // namespace veclut

#else

namespace veclut {
const kernel_set * avx2_kernels() { return nullptr; }  // not compiled for this ISA
}  // namespace veclut

#endif
