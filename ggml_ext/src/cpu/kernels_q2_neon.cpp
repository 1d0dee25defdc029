// Arm NEON kernels of the 2-bit layout (AArch64; SDOT for the dot path where the build has the
// dot-product extension, SMULL/SMLAL otherwise). Simpler than the ternary NEON set: not measured
// on Arm hardware yet (only emulated here), written for clarity first.
//
// Vector LUT: a tile is 16 tokens, one table entry = 16 x int16 = two q registers; 16 tables of
// 256 entries per 64-block (128 KiB), built from the activations transposed to token-minor int16,
// one add per entry; each half-block summed in its own int16 chains. Overflow bound as in
// kernels_q2_scalar.cpp: a half-block sum is at most 8 * 4 * 3 * 127 = 12192 in magnitude.
//
// Dot path: a half's 8 code bytes, duplicated and shifted right by 0, 2 (low 16) or 4, 6 (high 16)
// and masked, are its 32 codes in natural order (the packed order of packed.h); they multiply the
// Q8_0 bytes by SDOT (or SMULL/SMLAL into int16: 16 products of at most 3 * 127 per lane pair,
// then SADALP), the sums of the activations come the same way with a vector of ones.

#include "kernels_q2.h"

#if defined(__ARM_NEON) && defined(__aarch64__)

#include "ggml-impl.h"

#include <arm_neon.h>

#include <cstring>

namespace veclut {

namespace {

constexpr int TILE = 16;
constexpr int GROUP = 256 * TILE;
// Switch-over to the vector LUT: estimated, as the ternary NEON set's (VECLUT_LUT_MIN_N overrides).
constexpr int LUT_MIN_N = 8;

void build_tables(const block_q8_0 * const * acts, int64_t b, int nt, int16_t * tables, float * act) {
    alignas(16) int16_t col[64 * TILE];
    gather_q8_0<TILE>(acts, b, nt, col, act);
    for (int g = 0; g < 16; ++g) {  // weights 32h + i + 8j of the packed order
        const int16_t * x = col + (32 * (g / 8) + g % 8) * TILE;
        int16_t * t = tables + g * GROUP;
        vst1q_s16(t, vdupq_n_s16(0));
        vst1q_s16(t + 8, vdupq_n_s16(0));
        for (int j = 0, span = 1; j < 4; ++j, span *= 4) {
            for (int s = 0; s < 2; ++s) {
                const int16x8_t a1 = vld1q_s16(x + 8 * j * TILE + 8 * s);
                const int16x8_t a2 = vaddq_s16(a1, a1);
                const int16x8_t a3 = vaddq_s16(a2, a1);
                for (int c = 0; c < span; ++c) {
                    const int16x8_t e = vld1q_s16(t + c * TILE + 8 * s);
                    vst1q_s16(t + (c + span) * TILE + 8 * s, vaddq_s16(e, a1));
                    vst1q_s16(t + (c + 2 * span) * TILE + 8 * s, vaddq_s16(e, a2));
                    vst1q_s16(t + (c + 3 * span) * TILE + 8 * s, vaddq_s16(e, a3));
                }
            }
        }
    }
}

// the 8 lookups of one half in two chains per 8 tokens
inline void half_sum(const int16_t * t, uint64_t q, int16x8_t & lo, int16x8_t & hi) {
    int16x8_t l1 = vdupq_n_s16(0), h1 = l1;
    for (int k = 0; k < 8; k += 2) {
        const int16_t * e0 = t + k * GROUP + ((q >> (8 * k)) & 0xFF) * TILE;
        const int16_t * e1 = t + (k + 1) * GROUP + ((q >> (8 * k + 8)) & 0xFF) * TILE;
        lo = vaddq_s16(lo, vld1q_s16(e0));
        hi = vaddq_s16(hi, vld1q_s16(e0 + 8));
        l1 = vaddq_s16(l1, vld1q_s16(e1));
        h1 = vaddq_s16(h1, vld1q_s16(e1 + 8));
    }
    lo = vaddq_s16(lo, l1);
    hi = vaddq_s16(hi, h1);
}

// f[0..3] (16 floats) += (s lanes, widened) * d * dy
inline void flush(float32x4_t * f, int16x8_t lo, int16x8_t hi, float d, const float * dy) {
    const int16x8_t s[2] = {lo, hi};
    for (int i = 0; i < 2; ++i) {
        const float32x4_t a = vcvtq_f32_s32(vmovl_s16(vget_low_s16(s[i])));
        const float32x4_t b = vcvtq_f32_s32(vmovl_high_s16(s[i]));
        f[2 * i] = vfmaq_f32(f[2 * i], a, vmulq_n_f32(vld1q_f32(dy + 8 * i), d));
        f[2 * i + 1] = vfmaq_f32(f[2 * i + 1], b, vmulq_n_f32(vld1q_f32(dy + 8 * i + 4), d));
    }
}

void lut_accumulate(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                    const int16_t * tables, const float * act, int, float * acc) {
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r) + b0 * 16;
        const float * s = w.row_scales(row0 + r) + 2 * b0;
        float * out = acc + r * TILE;
        float32x4_t f[4] = {vld1q_f32(out), vld1q_f32(out + 4), vld1q_f32(out + 8), vld1q_f32(out + 12)};
        for (int64_t b = 0; b < kb; ++b, codes += 16, s += 2) {
            const int16_t * t = tables + b * 16 * GROUP;
            uint64_t q[2];
            std::memcpy(q, codes, 16);
            int16x8_t a_lo = vdupq_n_s16(0), a_hi = a_lo, c_lo = a_lo, c_hi = a_lo;
            half_sum(t, q[0], a_lo, a_hi);
            half_sum(t + 8 * GROUP, q[1], c_lo, c_hi);
            const float * A = act + b * Q2_ACT_FLOATS * TILE;
            for (int i = 0; i < 4; ++i) {
                f[i] = vfmaq_n_f32(f[i], vld1q_f32(A + 2 * TILE + 4 * i), s[1]);
            }
            flush(f, a_lo, a_hi, s[0], A);
            flush(f, c_lo, c_hi, s[0], A + TILE);
        }
        for (int i = 0; i < 4; ++i) {
            vst1q_f32(out + 4 * i, f[i]);
        }
    }
}

// codes of half-block weights 0..15 (lo) and 16..31 (hi) from its 8 code bytes
inline void expand_half(const uint8_t * codes, int8x16_t & lo, int8x16_t & hi) {
    const uint8x8_t v = vld1_u8(codes);
    const uint8x16_t vv = vcombine_u8(v, v);
    const int8x16_t sh_lo = vcombine_s8(vdup_n_s8(0), vdup_n_s8(-2));
    const int8x16_t sh_hi = vcombine_s8(vdup_n_s8(-4), vdup_n_s8(-6));
    const uint8x16_t three = vdupq_n_u8(3);
    lo = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(vv, sh_lo), three));
    hi = vreinterpretq_s8_u8(vandq_u8(vshlq_u8(vv, sh_hi), three));
}

// int32 lanes of sum q * a over 32 bytes (two vectors each)
inline int32x4_t dot32(int8x16_t q0, int8x16_t q1, int8x16_t a0, int8x16_t a1) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), q0, a0), q1, a1);
#else
    int16x8_t p = vmull_s8(vget_low_s8(q0), vget_low_s8(a0));
    p = vmlal_high_s8(p, q0, a0);
    p = vmlal_s8(p, vget_low_s8(q1), vget_low_s8(a1));
    p = vmlal_high_s8(p, q1, a1);  // 4 products of at most 3 * 127 per lane
    return vpaddlq_s16(p);
#endif
}

constexpr int DOT_TOKENS = 4;

void dot(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_0 * const * acts,
         int nt, float * out, int64_t out_stride) {
    const int8x16_t ones = vdupq_n_s8(1);
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r);
        const float * s = w.row_scales(row0 + r);
        for (int n0 = 0; n0 < nt; n0 += DOT_TOKENS) {
            const int tn = nt - n0 < DOT_TOKENS ? nt - n0 : DOT_TOKENS;
            float32x4_t accv[DOT_TOKENS];
            for (int i = 0; i < DOT_TOKENS; ++i) {
                accv[i] = vdupq_n_f32(0.0f);
            }
            for (int64_t b = 0; b < w.blocks; ++b) {
                int8x16_t q[2][2];
                expand_half(codes + 16 * b, q[0][0], q[0][1]);
                expand_half(codes + 16 * b + 8, q[1][0], q[1][1]);
                const float d = s[2 * b], m = s[2 * b + 1];
                for (int i = 0; i < tn; ++i) {
                    for (int h = 0; h < 2; ++h) {
                        const block_q8_0 & a = acts[n0 + i][2 * b + h];
                        const int8x16_t a0 = vld1q_s8(a.qs), a1 = vld1q_s8(a.qs + 16);
                        const float32x4_t qs = vcvtq_f32_s32(dot32(q[h][0], q[h][1], a0, a1));
                        const float32x4_t xs = vcvtq_f32_s32(dot32(ones, ones, a0, a1));
                        const float32x4_t v = vfmaq_n_f32(vmulq_n_f32(xs, m), qs, d);
                        accv[i] = vfmaq_n_f32(accv[i], v, GGML_FP16_TO_FP32(a.d));
                    }
                }
            }
            for (int i = 0; i < tn; ++i) {
                out[r * out_stride + n0 + i] = vaddvq_f32(accv[i]);
            }
        }
    }
}

}  // namespace

const q2_kernel_set * q2_neon_kernels() {
    static const q2_kernel_set set = {"neon", TILE, LUT_MIN_N, dot, build_tables, lut_accumulate};
    return &set;
}

}  // namespace veclut

#else

namespace veclut {
const q2_kernel_set * q2_neon_kernels() { return nullptr; }
}  // namespace veclut

#endif
