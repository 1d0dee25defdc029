// Arm NEON kernels (AArch64 Advanced SIMD; the dot path uses SDOT where the build has the
// dot-product extension, __ARM_FEATURE_DOTPROD, and SMULL/SMLAL otherwise).
//
// Vector LUT: a tile is 32 tokens, as in the AVX-512 set, so one table entry is 32 x int16 =
// 64 bytes = four q registers ("slices" of 8 tokens). A tile of nt tokens uses only the first
// S = ceil(nt / 8) slices, in the build and in the lookups (templated on S), so a tile of 9..16
// tokens costs half the adds of a full one. Per lookup the inner loop does:
//     ubfx  code from a 64-bit word of 8 codes        (1)
//     add   entry address = base + code << 9           (1)
//     ldp   q, q  [entry + 64 j (+ 32)]                (S / 2, rounded up)
//     add   v.8h  into the accumulators                (S)
// i.e. 8 instructions for 32 tokens (S = 4), 5 for 16, 4 for 8: see lookup8() below.
// To make the group offset an immediate, the tables of one block are interleaved per 8 groups:
//     entry(g, code) = tables + (((g / 8) * C + code) * 8 + g % 8) * 32 int16
// (C = 81 or 243 codes; I1_V's four 4-trit tail groups follow the 48 5-trit ones, interleaved
// by 4), so the 8 lookups of one 64-bit word share one base and differ by 64 * j bytes.
//
// Tables are built from the activations transposed to token-minor int16 (8x8 transposes), one
// add per entry and no loads: per group and slice, the partial sums of the two low digits (9
// vectors) and of the high ones (9, or 9 x 3 for 5 trits) are in registers and every entry is
// one add of two of them. Mirror symmetry (entry(last - code) = -entry(code), trits negate)
// builds the partial tables: L[8 - i] = -L[i], so half of them are one negation. It cannot
// save work on the entries themselves: each is a distinct vector needing one op and one store.
//
// Overflow bound: as in kernels_scalar.cpp, every entry and every partial sum inside one
// 256-block is bounded by sum |q| <= 256 * 127 = 32512 < 32767 (Q8_K values are in [-127, 127],
// weights in {-1, 0, 1}), so the int16 chains cannot overflow in any order of addition; block
// sums are widened to int32, then float, with both scales, once per block.
//
// Dot path: activations are prepared once per MUL_MAT per token in digit-major order,
// a'_j[g] = the activation that trit j of code g multiplies (zero where no code is), stored per
// block as [slice of 16 codes][trit j][16 bytes], so one slice's D (4 or 5) vectors are one
// contiguous 64/80-byte load. Codes are decoded to trits (-1, 0, 1 as int8, so no offset term is
// needed) with h = code / 9 = (code * 57) >> 9 (exact for every byte), l = code - 9 h and 16-entry
// TBL lookups of l and h (I1_V splits h <= 26 again by two compares): 9 instructions per 16 codes
// (I2_V), 14 (I1_V), shared by up to 4 tokens. Per token and 16 codes:
//     with dotprod: one load + D SDOT into int32 lanes (per block: scvtf + fmla);
//     plain NEON:   one load + 2 D SMULL/SMLAL into int16 (per lane at most 4 slices x 5 trits
//                   x 127 = 2540 per block), widened per block by SADDLP/SADALP, then scvtf + fmla.

#include "kernels.h"

#if defined(__ARM_NEON) && defined(__aarch64__)

#include <arm_neon.h>

#include <cstring>

namespace veclut {

namespace {

constexpr int TILE = 32;    // tokens per tile: 4 slices of 8 int16
constexpr int SLICE = 8;
// Switch-over from the dot path to the vector LUT. Not measured on Arm hardware yet (only
// emulated here), so estimated from the compiled loops (GCC 12, instructions per 256 weights x
// token, I2_V): dot path with SDOT 40 (4 tokens at a time), plain NEON 71; vector LUT 35 at
// S = 1 (N <= 8), 22 at S = 2, 18 at S = 4, plus the table build (~2 per entry and slice) and
// L1 misses on the tables (331 KB per block). Override with VECLUT_LUT_MIN_N.
#if defined(__ARM_FEATURE_DOTPROD)
constexpr int LUT_MIN_N = 12;
#else
constexpr int LUT_MIN_N = 8;
#endif

template <layout KIND> struct geometry;
template <> struct geometry<layout::i2> {
    static constexpr int C = 81, OCT = 8, GROUPS = 64;
};
template <> struct geometry<layout::i1> {
    static constexpr int C = 243, OCT = 8, GROUPS = 48;  // then the tail: C = 81, OCT = 4, 4 groups
};

// int16 offset of entry (group, code) inside a region of groups of C codes interleaved by OCT
constexpr size_t entry_offset(int c_per_group, int oct, int g, int code) {
    return ((size_t) ((g / oct) * c_per_group + code) * oct + g % oct) * TILE;
}

// ---------------------------------------------------------------------------------------------
// Table build

// 8 x 8 int16 transpose in registers
inline void transpose8(int16x8_t r[8]) {
    int16x8_t t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i]     = vtrn1q_s16(r[i], r[i + 1]);
        t[i + 1] = vtrn2q_s16(r[i], r[i + 1]);
    }
    int32x4_t u[8];
    for (int i = 0; i < 8; i += 4) {
        for (int k = 0; k < 2; ++k) {
            u[i + k]     = vtrn1q_s32(vreinterpretq_s32_s16(t[i + k]), vreinterpretq_s32_s16(t[i + k + 2]));
            u[i + k + 2] = vtrn2q_s32(vreinterpretq_s32_s16(t[i + k]), vreinterpretq_s32_s16(t[i + k + 2]));
        }
    }
    for (int k = 0; k < 4; ++k) {
        r[k]     = vreinterpretq_s16_s64(vtrn1q_s64(vreinterpretq_s64_s32(u[k]), vreinterpretq_s64_s32(u[k + 4])));
        r[k + 4] = vreinterpretq_s16_s64(vtrn2q_s64(vreinterpretq_s64_s32(u[k]), vreinterpretq_s64_s32(u[k + 4])));
    }
}

// Activations of block b, transposed: col[k * TILE + n] for the first S slices (zero for n >= nt).
void transpose_acts(const block_q8_K * const * acts, int64_t b, int nt, int S, int16_t * col) {
    static const int8_t zeros[QK_K] = {0};
    for (int s = 0; s < S; ++s) {
        const int8_t * q[SLICE];
        for (int i = 0; i < SLICE; ++i) {
            const int n = s * SLICE + i;
            q[i] = n < nt ? acts[n][b].qs : zeros;
        }
        for (int k0 = 0; k0 < QK_K; k0 += 8) {
            int16x8_t r[8];
            for (int i = 0; i < 8; ++i) {
                r[i] = vmovl_s8(vld1_s8(q[i] + k0));
            }
            transpose8(r);  // r[k] = activation k0 + k of the slice's 8 tokens
            for (int k = 0; k < 8; ++k) {
                vst1q_s16(col + (k0 + k) * TILE + s * SLICE, r[k]);
            }
        }
    }
}

// partial sums of two trits: p[d0 + 3 d1] = (d0 - 1) a0 + (d1 - 1) a1; p[8 - i] = -p[i]
inline void pair_table(int16x8_t a0, int16x8_t a1, int16x8_t p[9]) {
    p[0] = vnegq_s16(vaddq_s16(a0, a1));
    p[1] = vnegq_s16(a1);
    p[2] = vsubq_s16(a0, a1);
    p[3] = vnegq_s16(a0);
    p[4] = vdupq_n_s16(0);
    p[5] = a0;
    p[6] = vnegq_s16(p[2]);
    p[7] = a1;
    p[8] = vaddq_s16(a0, a1);
}

// One 4-trit group, one slice: entry(9 h + l) = L[l] + H[h]; `t` points at entry (g, 0) + slice,
// entries `stride` int16 apart.
inline void build4(const int16_t * a, int16_t * t, size_t stride) {
    int16x8_t L[9], H[9];
    pair_table(vld1q_s16(a), vld1q_s16(a + TILE), L);
    pair_table(vld1q_s16(a + 2 * TILE), vld1q_s16(a + 3 * TILE), H);
#pragma GCC unroll 9
    for (int h = 0; h < 9; ++h) {
#pragma GCC unroll 9
        for (int l = 0; l < 9; ++l) {
            vst1q_s16(t + (9 * h + l) * stride, vaddq_s16(L[l], H[h]));
        }
    }
}

// One 5-trit group, one slice: entry(l + 9 m + 81 d) = L[l] + M[m] + (d - 1) a4.
inline void build5(const int16_t * a, int16_t * t, size_t stride) {
    int16x8_t L[9], M[9];
    pair_table(vld1q_s16(a), vld1q_s16(a + TILE), L);
    pair_table(vld1q_s16(a + 2 * TILE), vld1q_s16(a + 3 * TILE), M);
    const int16x8_t a4 = vld1q_s16(a + 4 * TILE);
    for (int d = 0; d < 3; ++d) {
#pragma GCC unroll 9
        for (int m = 0; m < 9; ++m) {
            const int16x8_t hv = d == 0 ? vsubq_s16(M[m], a4) : d == 1 ? M[m] : vaddq_s16(M[m], a4);
#pragma GCC unroll 9
            for (int l = 0; l < 9; ++l) {
                vst1q_s16(t + (l + 9 * m + 81 * d) * stride, vaddq_s16(L[l], hv));
            }
        }
    }
}

inline int slices_of(int nt) { return (nt + SLICE - 1) / SLICE; }

void build_tables(layout kind, const block_q8_K * const * acts, int64_t b, int nt, int16_t * tables, float * act_scale) {
    alignas(64) int16_t col[QK_K * TILE];
    const int S = slices_of(nt);
    transpose_acts(acts, b, nt, S, col);
    if (kind == layout::i2) {
        using G = geometry<layout::i2>;
        for (int g = 0; g < G::GROUPS; ++g) {
            int16_t * t = tables + entry_offset(G::C, G::OCT, g, 0);
            for (int s = 0; s < S; ++s) {
                build4(col + 4 * g * TILE + s * SLICE, t + s * SLICE, G::OCT * TILE);
            }
        }
    } else {
        using G = geometry<layout::i1>;
        for (int g = 0; g < G::GROUPS; ++g) {
            int16_t * t = tables + entry_offset(G::C, G::OCT, g, 0);
            for (int s = 0; s < S; ++s) {
                build5(col + 5 * g * TILE + s * SLICE, t + s * SLICE, G::OCT * TILE);
            }
        }
        int16_t * tail = tables + (size_t) G::GROUPS * G::C * TILE;
        for (int g = 0; g < 4; ++g) {
            for (int s = 0; s < S; ++s) {
                build4(col + (5 * G::GROUPS + 4 * g) * TILE + s * SLICE, tail + entry_offset(81, 4, g, 0) + s * SLICE, 4 * TILE);
            }
        }
    }
    for (int n = 0; n < TILE; ++n) {
        act_scale[n] = n < nt ? acts[n][b].d : 0.0f;
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups

// keep the two chains apart (GCC would reassociate them into one chain of dependent adds)
template <int S>
inline void keep_apart(int16x8_t (&x)[S], int16x8_t (&y)[S]) {
    for (int s = 0; s < S; ++s) {
        __asm__("" : "+w"(x[s]), "+w"(y[s]));
    }
}

// add entry `code` (S slices) at `p` (entry of code 0 of this group) into x
template <int S>
inline void add_entry(int16x8_t (&x)[S], const int16_t * p) {
    for (int s = 0; s < S; ++s) {
        x[s] = vaddq_s16(x[s], vld1q_s16(p + s * SLICE));
    }
}

// One lookup: the entry of byte J of q, in a group interleaved by 8 from `base`, added into x.
// ubfx + add (lsl #9) + ldp (S / 2 of them, an ldr for an odd slice) in asm: GCC otherwise folds
// J * 64 into the index (an extra lsl and add) instead of the loads' immediate offsets and splits
// half the pairs into single loads. The asm reads the tables without telling the compiler: safe,
// as they are written by build_tables (another call) and only read while lut_accumulate runs.
template <int S, int J>
inline void lookup(const int16_t * base, uint64_t q, int16x8_t (&x)[S]) {
    const int16_t * p;
    int16x8_t e0, e1, e2, e3;
#define VECLUT_ADDR "ubfx %x[p], %x[q], #%c[sh], #8\n\tadd %x[p], %x[b], %x[p], lsl #9\n\t"
    if constexpr (S == 1) {
        __asm__(VECLUT_ADDR "ldr %q[e0], [%x[p], #%c[o]]"
                : [p] "=&r"(p), [e0] "=w"(e0) : [q] "r"(q), [b] "r"(base), [sh] "i"(8 * J), [o] "i"(64 * J));
    } else if constexpr (S == 2) {
        __asm__(VECLUT_ADDR "ldp %q[e0], %q[e1], [%x[p], #%c[o]]"
                : [p] "=&r"(p), [e0] "=w"(e0), [e1] "=w"(e1) : [q] "r"(q), [b] "r"(base), [sh] "i"(8 * J), [o] "i"(64 * J));
    } else if constexpr (S == 3) {
        __asm__(VECLUT_ADDR "ldp %q[e0], %q[e1], [%x[p], #%c[o]]\n\tldr %q[e2], [%x[p], #%c[o2]]"
                : [p] "=&r"(p), [e0] "=w"(e0), [e1] "=w"(e1), [e2] "=w"(e2)
                : [q] "r"(q), [b] "r"(base), [sh] "i"(8 * J), [o] "i"(64 * J), [o2] "i"(64 * J + 32));
    } else {
        __asm__(VECLUT_ADDR "ldp %q[e0], %q[e1], [%x[p], #%c[o]]\n\tldp %q[e2], %q[e3], [%x[p], #%c[o2]]"
                : [p] "=&r"(p), [e0] "=w"(e0), [e1] "=w"(e1), [e2] "=w"(e2), [e3] "=w"(e3)
                : [q] "r"(q), [b] "r"(base), [sh] "i"(8 * J), [o] "i"(64 * J), [o2] "i"(64 * J + 32));
    }
#undef VECLUT_ADDR
    const int16x8_t e[4] = {e0, S > 1 ? e1 : e0, S > 2 ? e2 : e0, S > 3 ? e3 : e0};
    for (int s = 0; s < S; ++s) {
        x[s] = vaddq_s16(x[s], e[s]);
    }
}

// 8 lookups: codes are the bytes of q, groups interleaved by OCT = 8 from `base` (C codes each)
template <int S>
inline void lookup8(const int16_t * base, uint64_t q, int16x8_t (&x)[S], int16x8_t (&y)[S]) {
    lookup<S, 0>(base, q, x);
    lookup<S, 1>(base, q, y);
    lookup<S, 2>(base, q, x);
    lookup<S, 3>(base, q, y);
    lookup<S, 4>(base, q, x);
    lookup<S, 5>(base, q, y);
    lookup<S, 6>(base, q, x);
    lookup<S, 7>(base, q, y);
    keep_apart<S>(x, y);
}

template <layout KIND, int S>
inline void block_sum(const uint8_t * codes, const int16_t * t, int16x8_t (&x)[S]) {
    using G = geometry<KIND>;
    int16x8_t y[S];
    for (int s = 0; s < S; ++s) {
        x[s] = vdupq_n_s16(0);
        y[s] = vdupq_n_s16(0);
    }
#pragma GCC unroll 8
    for (int i = 0; i < G::GROUPS / 8; ++i) {
        uint64_t q;
        std::memcpy(&q, codes + 8 * i, 8);
        lookup8<S>(t + (size_t) i * G::C * 8 * TILE, q, x, y);
    }
    if constexpr (KIND == layout::i1) {
        uint32_t tail;
        std::memcpy(&tail, codes + G::GROUPS, 4);
        const int16_t * t4 = t + (size_t) G::GROUPS * G::C * TILE;
        add_entry<S>(x, t4 + ((size_t) (tail & 0xFF) * 4 + 0) * TILE);
        add_entry<S>(y, t4 + ((size_t) ((tail >> 8) & 0xFF) * 4 + 1) * TILE);
        add_entry<S>(x, t4 + ((size_t) ((tail >> 16) & 0xFF) * 4 + 2) * TILE);
        add_entry<S>(y, t4 + ((size_t) (tail >> 24) * 4 + 3) * TILE);
    }
    for (int s = 0; s < S; ++s) {
        x[s] = vaddq_s16(x[s], y[s]);
    }
}

// Rows are K-contiguous, so one step's codes of consecutive rows lie a row apart, a stride the
// hardware prefetcher may not follow: fetch those of a row PREFETCH_ROWS ahead (as on x86).
constexpr int64_t PREFETCH_ROWS = 32;

template <layout KIND, int S>
void lut_accumulate_t(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                      const int16_t * tables, const float * act_scale, float * acc) {
    constexpr layout_info li = info_of(KIND);
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r) + b0 * li.code_bytes;
        const scale_run scales = w.block_scales(row0 + r) + b0;
        float * out = acc + r * TILE;
        if (row0 + r + PREFETCH_ROWS < w.rows) {
            const char * ahead = (const char *) w.row_codes(row0 + r + PREFETCH_ROWS) + b0 * li.code_bytes;
            for (int64_t off = 0; off < kb * li.code_bytes; off += 64) {
                __builtin_prefetch(ahead + off);
            }
            __builtin_prefetch(ahead + kb * li.code_bytes - 1);
        }
        float32x4_t f[2 * S];
        for (int i = 0; i < 2 * S; ++i) {
            f[i] = vld1q_f32(out + 4 * i);
        }
        for (int64_t b = 0; b < kb; ++b, codes += li.code_bytes) {
            int16x8_t s16[S];
            block_sum<KIND, S>(codes, tables + b * li.table_entries * TILE, s16);
            const float ws = scales[b];
            const float * as = act_scale + b * TILE;
            for (int s = 0; s < S; ++s) {
                const float32x4_t lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(s16[s])));
                const float32x4_t hi = vcvtq_f32_s32(vmovl_high_s16(s16[s]));
                f[2 * s]     = vfmaq_f32(f[2 * s], lo, vmulq_n_f32(vld1q_f32(as + 8 * s), ws));
                f[2 * s + 1] = vfmaq_f32(f[2 * s + 1], hi, vmulq_n_f32(vld1q_f32(as + 8 * s + 4), ws));
            }
        }
        for (int i = 0; i < 2 * S; ++i) {
            vst1q_f32(out + 4 * i, f[i]);
        }
    }
}

template <layout KIND>
void lut_accumulate_k(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                      const int16_t * tables, const float * act_scale, int nt, float * acc) {
    switch (slices_of(nt)) {
        case 1: lut_accumulate_t<KIND, 1>(w, row0, nrows, b0, kb, tables, act_scale, acc); break;
        case 2: lut_accumulate_t<KIND, 2>(w, row0, nrows, b0, kb, tables, act_scale, acc); break;
        case 3: lut_accumulate_t<KIND, 3>(w, row0, nrows, b0, kb, tables, act_scale, acc); break;
        default: lut_accumulate_t<KIND, 4>(w, row0, nrows, b0, kb, tables, act_scale, acc); break;
    }
}

void lut_accumulate(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                    const int16_t * tables, const float * act_scale, int nt, float * acc) {
    if (w.kind == layout::i2) {
        lut_accumulate_k<layout::i2>(w, row0, nrows, b0, kb, tables, act_scale, nt, acc);
    } else {
        lut_accumulate_k<layout::i1>(w, row0, nrows, b0, kb, tables, act_scale, nt, acc);
    }
}

// ---------------------------------------------------------------------------------------------
// Dot path

template <layout KIND> constexpr int digits_of = KIND == layout::i2 ? 4 : 5;

size_t prep_bytes(layout kind, int64_t blocks) {
    return (size_t) blocks * (kind == layout::i2 ? 4 : 5) * 64;
}

// per block: [slice v of 16 codes][trit j][16 bytes] = activation that trit j of code 16 v + i
// multiplies (zero where no code is)
void prepare(layout kind, const block_q8_K * act, int64_t blocks, uint8_t * out) {
    const int D = kind == layout::i2 ? 4 : 5;
    for (int64_t b = 0; b < blocks; ++b, out += D * 64) {
        const int8_t * q = act[b].qs;
        int8_t * a = (int8_t *) out;
        std::memset(a, 0, D * 64);
        auto put = [&](int g, int j, int8_t v) { a[((g / 16) * D + j) * 16 + g % 16] = v; };
        if (kind == layout::i2) {
            for (int g = 0; g < 64; ++g) {
                for (int j = 0; j < 4; ++j) put(g, j, q[4 * g + j]);
            }
        } else {
            for (int g = 0; g < 48; ++g) {
                for (int j = 0; j < 5; ++j) put(g, j, q[5 * g + j]);
            }
            for (int t = 0; t < 4; ++t) {
                for (int j = 0; j < 4; ++j) put(48 + t, j, q[240 + 4 * t + j]);
            }
        }
    }
}

// trit tables for an index 0..8 (l = code mod 9, or h = code / 9 mod 9): the trit of its low
// digit and of its high digit (constexpr: no load-time code, see kernels_scalar.cpp's trit_table)
struct trit_tables {
    alignas(16) int8_t mod3[16];  // i % 3 - 1
    alignas(16) int8_t div3[16];  // (i / 3) % 3 - 1
    constexpr trit_tables() : mod3(), div3() {
        for (int i = 0; i < 16; ++i) {
            mod3[i] = (int8_t) (i % 3 - 1);
            div3[i] = (int8_t) ((i / 3) % 3 - 1);
        }
    }
};
constexpr trit_tables TRITS;

// trits of 16 codes: tr[0..D)
template <int D>
inline void decode(uint8x16_t c, int8x16_t mod3, int8x16_t div3, int8x16_t * tr) {
    // h = code / 9 = (code * 57) >> 9, exact for every byte; l = code - 9 h
    const uint8x16_t k57 = vdupq_n_u8(57);
    const uint16x8_t plo = vmull_u8(vget_low_u8(c), vget_low_u8(k57));
    const uint16x8_t phi = vmull_high_u8(c, k57);
    const uint8x16_t h = vshrq_n_u8(vuzp2q_u8(vreinterpretq_u8_u16(plo), vreinterpretq_u8_u16(phi)), 1);  // high bytes >> 1
    const uint8x16_t l = vmlsq_u8(c, h, vdupq_n_u8(9));
    tr[0] = vqtbl1q_s8(mod3, l);
    tr[1] = vqtbl1q_s8(div3, l);
    if constexpr (D == 4) {  // h <= 8
        tr[2] = vqtbl1q_s8(mod3, h);
        tr[3] = vqtbl1q_s8(div3, h);
    } else {  // h <= 26: m = -(h / 9) by two compares, h mod 9 = h + 9 m, trit 4 = h / 9 - 1 = ~m
        const uint8x16_t m = vaddq_u8(vcgtq_u8(h, vdupq_n_u8(8)), vcgtq_u8(h, vdupq_n_u8(17)));
        const uint8x16_t hl = vmlaq_u8(h, m, vdupq_n_u8(9));
        tr[2] = vqtbl1q_s8(mod3, hl);
        tr[3] = vqtbl1q_s8(div3, hl);
        tr[4] = vreinterpretq_s8_u8(vmvnq_u8(m));
    }
}

// the D activation vectors of one slice: one 64-byte load (+ one for the fifth trit)
template <int D>
inline void load_acts(const int8_t * a, int8x16_t * v) {
    const int8x16x4_t x = vld1q_s8_x4(a);
    v[0] = x.val[0];
    v[1] = x.val[1];
    v[2] = x.val[2];
    v[3] = x.val[3];
    if constexpr (D == 5) {
        v[4] = vld1q_s8(a + 64);
    }
}

#if defined(__ARM_FEATURE_DOTPROD)
// int32 lanes whose sum is the dot product of D trit vectors with the D activation vectors at a
template <int D>
inline int32x4_t dot_slice(int32x4_t s, const int8x16_t * tr, const int8_t * a) {
    int8x16_t v[D];
    load_acts<D>(a, v);
    for (int j = 0; j < D; ++j) {
        s = vdotq_s32(s, tr[j], v[j]);
    }
    return s;
}
#endif

// plain NEON: products of D trit vectors with activations into two int16 accumulators
template <int D>
inline void mul_slice(int16x8_t & lo, int16x8_t & hi, const int8x16_t * tr, const int8_t * a) {
    int8x16_t v[D];
    load_acts<D>(a, v);
    for (int j = 0; j < D; ++j) {
        lo = vmlal_s8(lo, vget_low_s8(tr[j]), vget_low_s8(v[j]));
        hi = vmlal_high_s8(hi, tr[j], v[j]);
    }
}

// codes 16 v .. 16 v + 15 of a block; I1_V's last slice holds its 4 tail codes, the other 12
// lanes are code 0, whose activations are 0
template <layout KIND>
inline uint8x16_t codes16(const uint8_t * codes, int v) {
    if (KIND == layout::i1 && v == 3) {
        uint32_t tail;
        std::memcpy(&tail, codes + 48, 4);
        return vreinterpretq_u8_u32(vsetq_lane_u32(tail, vdupq_n_u32(0), 0));
    }
    return vld1q_u8(codes + 16 * v);
}

template <layout KIND, int NT>
void dot_t(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_K * const * acts,
           const uint8_t * prep, size_t prep_stride, float * out, int64_t out_stride) {
    constexpr layout_info li = info_of(KIND);
    constexpr int D = digits_of<KIND>;
    constexpr size_t PB = D * 64;  // prepared bytes per block
    const int8x16_t mod3 = vld1q_s8(TRITS.mod3), div3 = vld1q_s8(TRITS.div3);
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r);
        const scale_run scales = w.block_scales(row0 + r);
        float32x4_t f[NT];
        for (int n = 0; n < NT; ++n) f[n] = vdupq_n_f32(0.0f);
        for (int64_t b = 0; b < w.blocks; ++b, codes += li.code_bytes) {
            __builtin_prefetch(codes + 4096);
#if defined(__ARM_FEATURE_DOTPROD)
            int32x4_t s[NT];
            for (int n = 0; n < NT; ++n) s[n] = vdupq_n_s32(0);
#pragma GCC unroll 4
            for (int v = 0; v < 4; ++v) {
                int8x16_t tr[D];
                decode<D>(codes16<KIND>(codes, v), mod3, div3, tr);
                for (int n = 0; n < NT; ++n) {
                    s[n] = dot_slice<D>(s[n], tr, (const int8_t *) (prep + n * prep_stride + b * PB + v * D * 16));
                }
            }
#else
            int16x8_t lo[NT], hi[NT];  // |lane| <= 4 slices x 5 trits x 127 = 2540
            for (int n = 0; n < NT; ++n) lo[n] = hi[n] = vdupq_n_s16(0);
#pragma GCC unroll 4
            for (int v = 0; v < 4; ++v) {
                int8x16_t tr[D];
                decode<D>(codes16<KIND>(codes, v), mod3, div3, tr);
                for (int n = 0; n < NT; ++n) {
                    mul_slice<D>(lo[n], hi[n], tr, (const int8_t *) (prep + n * prep_stride + b * PB + v * D * 16));
                }
            }
            int32x4_t s[NT];
            for (int n = 0; n < NT; ++n) s[n] = vpadalq_s16(vpaddlq_s16(lo[n]), hi[n]);
#endif
            for (int n = 0; n < NT; ++n) {
                f[n] = vfmaq_n_f32(f[n], vcvtq_f32_s32(s[n]), scales[b] * acts[n][b].d);
            }
        }
        for (int n = 0; n < NT; ++n) out[r * out_stride + n] = vaddvq_f32(f[n]);
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

}  // namespace

const kernel_set * neon_kernels() {
    static const kernel_set set = {
        "neon", TILE, LUT_MIN_N, dot, build_tables, lut_accumulate, prep_bytes, prepare,
    };
    return &set;
}

}  // namespace veclut

#else

namespace veclut {
const kernel_set * neon_kernels() { return nullptr; }  // not compiled for this ISA
}  // namespace veclut

#endif
