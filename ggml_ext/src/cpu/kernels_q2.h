// Kernels for the 2-bit layout (Q2_V and upstream Q2_0 repacked) and the 1-bit one (upstream
// Q1_0, where the set has dot1): one set per ISA, chosen with the ternary set of the same ISA. Activations are Q8_0 (one scale per 32), as upstream Q2_0's,
// so a 64-block has two activation scales; the offset o enters through per-token sums.
#pragma once

#include "kernels.h"

#include "ggml-impl.h"  // GGML_FP16_TO_FP32

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <cstring>
#include <vector>

namespace veclut {

// floats per block and token next to the tables: dy of each half and dy0 * s0 + dy1 * s1
// (s = sum of the half's Q8_0 values), laid out [what][tile_n]
constexpr int Q2_ACT_FLOATS = 3;

struct q2_kernel_set {
    const char * name;
    int tile_n;     // tokens per table tile
    int lut_min_n;  // below this many tokens the dot-product path is faster

    // out[r * out_stride + n] = row (row0 + r) . token n, acts[n] = token n's Q8_0 blocks
    void (*dot)(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_0 * const * acts,
                int nt, float * out, int64_t out_stride);

    // 64-block b, nt <= tile_n tokens: tables[(g * 256 + code) * tile_n + n] = sum_j q_j(code) *
    // a_n[32 (g / 8) + g % 8 + 8j] for the 16 groups g (q_j = bits 2j..2j+1 of code; the packed
    // order of packed.h), and act as above
    void (*build_tables)(const block_q8_0 * const * acts, int64_t b, int nt, int16_t * tables, float * act);

    // rows [row0, row0+nrows), blocks [b0, b0+kb) whose tables were built consecutively:
    // acc[r * tile_n + n] += d * (dy0 * sum0 + dy1 * sum1) + d * o * (dy0 * s0 + dy1 * s1)
    void (*lut_accumulate)(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                           const int16_t * tables, const float * act, int nt, float * acc);

    // Optional, all three or none: the same on the q1 layout (bits, d per 64; weight =
    // d * (2 bit - 1)). Where they are nullptr, upstream Q1_0 is repacked as q2 instead
    // (packed.cpp: layout_for_type). q1 tables: one per code byte g of a 64-block (8 groups of
    // 256 entries), tables[(g * 256 + byte) * tile_n + n] = sum of token n's activations whose
    // bit is set in byte (packed.h: byte g = 4h + c holds weights 32h + 8j + 2c + t / 4 in bit
    // t = 4 (t / 4) + j); act as for q2; acc += 2d * (dy0 * sum0 + dy1 * sum1) - d * (dy0 * s0 + dy1 * s1).
    void (*dot1)(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_0 * const * acts,
                 int nt, float * out, int64_t out_stride) = nullptr;
    void (*build_tables1)(const block_q8_0 * const * acts, int64_t b, int nt, int16_t * tables, float * act) = nullptr;
    void (*lut_accumulate1)(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                            const int16_t * tables, const float * act, int nt, float * acc) = nullptr;
    int lut_min_n1 = 0;  // lut_min_n of q1 (its tables take 8 weights per lookup, so it pays sooner)
};

// Weight (0..31 within its half) of bit t of q1 code byte c of a half (packed.h)
constexpr int q1_weight(int c, int t) { return 8 * (t % 4) + 2 * c + t / 4; }

const q2_kernel_set & q2_scalar_kernels();
// SIMD sets: nullptr when this build was not compiled for the ISA.
const q2_kernel_set * q2_avx512_kernels();
const q2_kernel_set * q2_avx2_kernels();
const q2_kernel_set * q2_neon_kernels();

// The 2-bit set of the same ISA as k (the scalar one where that ISA has none).
const q2_kernel_set & q2_kernels_for(const kernel_set & k);

// Activations of 64-block b for nt tokens, as the SIMD table builders read them: token-minor
// (col[k * TILE + n], zero past nt), and per token act[n] / act[TILE + n] = the scales of its two
// Q8_0 halves, act[2 * TILE + n] = the block's activation sum (folds the offset o in).
template <int TILE>
inline void gather_q8_0(const block_q8_0 * const * acts, int64_t b, int nt, int16_t * col, float * act) {
    if (nt < TILE) {
        std::memset(col, 0, 64 * TILE * sizeof(int16_t));
    }
    for (int n = 0; n < nt; ++n) {
        int32_t sums[2] = {0, 0};
        for (int h = 0; h < 2; ++h) {
            const block_q8_0 & a = acts[n][2 * b + h];
            for (int k = 0; k < 32; ++k) {
                col[(32 * h + k) * TILE + n] = a.qs[k];
                sums[h] += a.qs[k];
            }
        }
        const float dy0 = GGML_FP16_TO_FP32(acts[n][2 * b].d), dy1 = GGML_FP16_TO_FP32(acts[n][2 * b + 1].d);
        act[n] = dy0;
        act[TILE + n] = dy1;
        act[2 * TILE + n] = dy0 * (float) sums[0] + dy1 * (float) sums[1];
    }
    for (int n = nt; n < TILE; ++n) {
        act[n] = act[TILE + n] = act[2 * TILE + n] = 0.0f;
    }
}

// Activations of the SIMD dot paths, prepared once per call so the row loop reads each as it
// multiplies it: per token and 64-block, its 64 Q8_0 values (both halves) then 16 floats (the
// half's scale dy0 eight times, dy1 eight times); after the blocks, per block the pair (0, S)
// with S = dy0 * s0 + dy1 * s1, aligned with the row's (d, d * o) scales so the offset term of a
// row is one dot product of two float arrays.
constexpr int Q2_PREP_BLOCK = 64 + 16 * sizeof(float);

// bytes per token, a multiple of 64 so every token's blocks stay 64-byte aligned
inline size_t q2_prep_bytes(int64_t blocks) { return (blocks * (Q2_PREP_BLOCK + 2 * sizeof(float)) + 63) / 64 * 64; }

inline void q2_prepare(const block_q8_0 * a, int64_t blocks, uint8_t * out) {
    float * pairs = (float *) (out + blocks * Q2_PREP_BLOCK);
    for (int64_t b = 0; b < blocks; ++b, a += 2, out += Q2_PREP_BLOCK) {
        float dy[2];
        int32_t sums[2] = {0, 0};
        for (int h = 0; h < 2; ++h) {
            std::memcpy(out + 32 * h, a[h].qs, 32);
            for (int k = 0; k < 32; ++k) {
                sums[h] += a[h].qs[k];
            }
            dy[h] = GGML_FP16_TO_FP32(a[h].d);
            float * scales = (float *) (out + 64) + 8 * h;
            for (int k = 0; k < 8; ++k) {
                scales[k] = dy[h];
            }
        }
        pairs[2 * b] = 0.0f;
        pairs[2 * b + 1] = dy[0] * (float) sums[0] + dy[1] * (float) sums[1];
    }
}

// This thread's buffer for nt tokens' prepared activations (64-byte aligned, reused across calls).
inline uint8_t * q2_prepare_all(const block_q8_0 * const * acts, int nt, int64_t blocks) {
    static thread_local std::vector<uint8_t> buffer;
    const size_t stride = q2_prep_bytes(blocks);
    if (buffer.size() < nt * stride + 64) {
        buffer.resize(nt * stride + 64);
    }
    uint8_t * base = buffer.data() + (64 - (uintptr_t) buffer.data() % 64) % 64;
    for (int n = 0; n < nt; ++n) {
        q2_prepare(acts[n], blocks, base + n * stride);
    }
    return base;
}

// q2_prepare_all for a 1-bit dot path whose expanded bits come out permuted: byte k of each
// 32-weight half holds activation perm[k] of the half, and the pairs (0, S) become S per block.
inline uint8_t * q1_prepare_all(const block_q8_0 * const * acts, int nt, int64_t blocks, const uint8_t * perm) {
    uint8_t * base = q2_prepare_all(acts, nt, blocks);
    const size_t stride = q2_prep_bytes(blocks);
    for (int n = 0; n < nt; ++n) {
        uint8_t * p = base + n * stride;
        for (int64_t h = 0; h < 2 * blocks; ++h) {
            uint8_t * x = p + (h / 2) * Q2_PREP_BLOCK + 32 * (h % 2);
            uint8_t natural[32];
            std::memcpy(natural, x, 32);
            for (int k = 0; k < 32; ++k) {
                x[k] = natural[perm[k]];
            }
        }
        float * pairs = (float *) (p + blocks * Q2_PREP_BLOCK);
        for (int64_t b = 0; b < blocks; ++b) {  // in place: b <= 2b + 1
            pairs[b] = pairs[2 * b + 1];
        }
    }
    return base;
}

// The SIMD dot paths' outer loop over activations prepared once (q2_prepare_all or
// q1_prepare_all): per row the tokens in groups of up to 4 (accumulators in registers);
// row_dot(std::integral_constant<int, TN>, codes, scales, blocks, prep, stride, sums) is the
// ISA's kernel for one row and TN tokens.
template <typename RowDot>
inline void q2_dot_rows(const packed_weights & w, int64_t row0, int64_t nrows, const uint8_t * prep,
                        int nt, float * out, int64_t out_stride, RowDot row_dot) {
    constexpr int GROUP_TOKENS = 4;
    const size_t stride = q2_prep_bytes(w.blocks);
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r);
        const float * s = w.row_scales(row0 + r);
        float sums[GROUP_TOKENS];
        for (int n0 = 0; n0 < nt; n0 += GROUP_TOKENS) {
            const uint8_t * p = prep + n0 * stride;
            const int tn = std::min(nt - n0, GROUP_TOKENS);
            switch (tn) {
                case 1: row_dot(std::integral_constant<int, 1>(), codes, s, w.blocks, p, stride, sums); break;
                case 2: row_dot(std::integral_constant<int, 2>(), codes, s, w.blocks, p, stride, sums); break;
                case 3: row_dot(std::integral_constant<int, 3>(), codes, s, w.blocks, p, stride, sums); break;
                default: row_dot(std::integral_constant<int, 4>(), codes, s, w.blocks, p, stride, sums); break;
            }
            for (int i = 0; i < tn; ++i) {
                out[r * out_stride + n0 + i] = sums[i];
            }
        }
    }
}

}  // namespace veclut
