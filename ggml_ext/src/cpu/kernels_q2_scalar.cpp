// Portable scalar kernels of the 2-bit and 1-bit layouts: the reference for the SIMD ones, and
// the fallback.
//
// Overflow bound: Q8_0 values are in [-127, 127] and codes in 0..3, so a table entry is at most
// 4 * 3 * 127 = 1524 in magnitude and the int16 sum of one half-block (8 groups, one activation
// scale) at most 8 * 1524 = 12192 < 32767. Sums are widened to float once per half-block.
// q1: an entry sums at most 8 activations (1016), a half-block 4 entries (4064).

#include "kernels_q2.h"

#include "ggml-impl.h"

#include <cstring>

namespace veclut {

static constexpr int TILE = 16;

// sum of q_k * a_k over the 32 weights of one half-block (its 8 bytes of codes in packed order:
// weight k in byte k % 8, bits 2 (k / 8)), and sum of a_k
static void half_dot(const uint8_t * codes, const int8_t * a, int32_t & dot, int32_t & sum) {
    dot = 0;
    sum = 0;
    for (int k = 0; k < 32; ++k) {
        dot += ((codes[k % 8] >> (2 * (k / 8))) & 3) * a[k];
        sum += a[k];
    }
}

static void q2_scalar_dot(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_0 * const * acts,
                          int nt, float * out, int64_t out_stride) {
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r);
        const float * s = w.row_scales(row0 + r);
        for (int n = 0; n < nt; ++n) {
            float sum = 0.0f;
            for (int64_t b = 0; b < w.blocks; ++b) {
                float lin = 0.0f, off = 0.0f;
                for (int h = 0; h < 2; ++h) {
                    const block_q8_0 & a = acts[n][2 * b + h];
                    const float dy = GGML_FP16_TO_FP32(a.d);
                    int32_t dot, asum;
                    half_dot(codes + b * 16 + 8 * h, a.qs, dot, asum);
                    lin += dy * (float) dot;
                    off += dy * (float) asum;
                }
                sum += s[2 * b] * lin + s[2 * b + 1] * off;
            }
            out[r * out_stride + n] = sum;
        }
    }
}

// q1: per 64-block d * (2 * sum_h dy_h * sum(bit a) - sum_h dy_h * sum(a)), bits as packed.h
// lays them out (weight 32h + 8j + i in bit 4i + j of word h)
static void q1_scalar_dot(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_0 * const * acts,
                          int nt, float * out, int64_t out_stride) {
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r);
        const float * d = w.row_scales(row0 + r);
        for (int n = 0; n < nt; ++n) {
            float sum = 0.0f;
            for (int64_t b = 0; b < w.blocks; ++b) {
                float lin = 0.0f, off = 0.0f;
                for (int h = 0; h < 2; ++h) {
                    const block_q8_0 & a = acts[n][2 * b + h];
                    uint32_t word;
                    std::memcpy(&word, codes + 8 * b + 4 * h, sizeof(word));
                    int32_t dot = 0, asum = 0;
                    for (int k = 0; k < 32; ++k) {
                        dot += (int32_t) ((word >> (4 * (k % 8) + k / 8)) & 1) * a.qs[k];
                        asum += a.qs[k];
                    }
                    const float dy = GGML_FP16_TO_FP32(a.d);
                    lin += dy * (float) dot;
                    off += dy * (float) asum;
                }
                sum += 2.0f * d[b] * lin - d[b] * off;
            }
            out[r * out_stride + n] = sum;
        }
    }
}

// Token n's floats beside a 64-block's tables: the scales of its two Q8_0 halves and the sum of
// its activations times their scale (for the weights' offset).
static void block_act_scales(const block_q8_0 * act_row, int64_t b, int n, float * act) {
    float dys[2];
    int32_t sums[2] = {0, 0};
    for (int h = 0; h < 2; ++h) {
        const block_q8_0 & a = act_row[2 * b + h];
        dys[h] = GGML_FP16_TO_FP32(a.d);
        for (int j = 0; j < 32; ++j) {
            sums[h] += a.qs[j];
        }
    }
    act[n] = dys[0];
    act[TILE + n] = dys[1];
    act[2 * TILE + n] = dys[0] * (float) sums[0] + dys[1] * (float) sums[1];
}

// entry(code) built code digit by code digit: entries c + v * 4^j extend entry c by v * a_j
static void q2_scalar_build_tables(const block_q8_0 * const * acts, int64_t b, int nt, int16_t * tables, float * act) {
    for (int n = 0; n < nt; ++n) {
        block_act_scales(acts[n], b, n, act);
        for (int h = 0; h < 2; ++h) {
            const block_q8_0 & a = acts[n][2 * b + h];
            for (int g = 0; g < 8; ++g) {  // group g of the half: weights g + 8j (packed order)
                const int8_t * x = a.qs + g;
                int16_t * t = tables + (8 * h + g) * 256 * TILE + n;
                t[0] = 0;
                for (int j = 0, span = 1; j < 4; ++j, span *= 4) {
                    for (int c = 0; c < span; ++c) {
                        for (int v = 1; v < 4; ++v) {
                            t[(c + v * span) * TILE] = (int16_t) (t[c * TILE] + v * x[8 * j]);
                        }
                    }
                }
            }
        }
    }
}

// q1 tables: entry(byte) built bit by bit: entries e + 2^t extend entry e by the activation of bit t
static void q1_scalar_build_tables(const block_q8_0 * const * acts, int64_t b, int nt, int16_t * tables, float * act) {
    for (int n = 0; n < nt; ++n) {
        block_act_scales(acts[n], b, n, act);
        for (int h = 0; h < 2; ++h) {
            const block_q8_0 & a = acts[n][2 * b + h];
            for (int c = 0; c < 4; ++c) {
                int16_t * t = tables + (4 * h + c) * 256 * TILE + n;
                t[0] = 0;
                for (int bit = 0, span = 1; bit < 8; ++bit, span *= 2) {
                    for (int e = 0; e < span; ++e) {
                        t[(e + span) * TILE] = (int16_t) (t[e * TILE] + a.qs[q1_weight(c, bit)]);
                    }
                }
            }
        }
    }
}

static void q1_scalar_lut_accumulate(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                                     const int16_t * tables, const float * act, int nt, float * acc) {
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r) + b0 * 8;
        const float * d = w.row_scales(row0 + r) + b0;
        float * out = acc + r * TILE;
        for (int64_t b = 0; b < kb; ++b, codes += 8) {
            const int16_t * t = tables + b * 8 * 256 * TILE;
            const float * a = act + b * Q2_ACT_FLOATS * TILE;
            int16_t half[2][TILE] = {};  // bounded by 4064: see the top of this file
            for (int g = 0; g < 8; ++g) {
                const int16_t * entry = t + (g * 256 + codes[g]) * TILE;
                for (int n = 0; n < nt; ++n) {
                    half[g / 4][n] += entry[n];
                }
            }
            for (int n = 0; n < nt; ++n) {
                out[n] += 2.0f * d[b] * (a[n] * (float) half[0][n] + a[TILE + n] * (float) half[1][n]) - d[b] * a[2 * TILE + n];
            }
        }
    }
}

static void q2_scalar_lut_accumulate(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                                     const int16_t * tables, const float * act, int nt, float * acc) {
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r) + b0 * 16;
        const float * s = w.row_scales(row0 + r) + 2 * b0;
        float * out = acc + r * TILE;
        for (int64_t b = 0; b < kb; ++b, codes += 16, s += 2) {
            const int16_t * t = tables + b * 16 * 256 * TILE;
            const float * a = act + b * Q2_ACT_FLOATS * TILE;
            int16_t half[2][TILE] = {};  // bounded by 12192: see the top of this file
            for (int g = 0; g < 16; ++g) {
                const int16_t * entry = t + (g * 256 + codes[g]) * TILE;
                for (int n = 0; n < nt; ++n) {
                    half[g / 8][n] += entry[n];
                }
            }
            for (int n = 0; n < nt; ++n) {
                out[n] += s[0] * (a[n] * (float) half[0][n] + a[TILE + n] * (float) half[1][n]) + s[1] * a[2 * TILE + n];
            }
        }
    }
}

const q2_kernel_set & q2_scalar_kernels() {
    static const q2_kernel_set set = {
        "scalar", TILE, 4, q2_scalar_dot, q2_scalar_build_tables, q2_scalar_lut_accumulate,
        q1_scalar_dot, q1_scalar_build_tables, q1_scalar_lut_accumulate, 4,
    };
    return set;
}

const q2_kernel_set & q2_kernels_for(const kernel_set & k) {
    for (const q2_kernel_set * set : {q2_avx512_kernels(), q2_avx2_kernels(), q2_neon_kernels()}) {
        if (set != nullptr && std::strcmp(set->name, k.name) == 0) {
            return *set;
        }
    }
    return q2_scalar_kernels();
}

}  // namespace veclut
