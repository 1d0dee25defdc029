// One FLASH_ATTN_EXT as the attention kernels see it, and the two kernels: a few query rows at a
// time (decode), and tiles of query rows (prefill). attention.cpp decides which runs.
#pragma once

#include "ggml.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace veclut {

struct attention_op {
    const ggml_tensor * q, * k, * v, * mask, * sinks;
    ggml_tensor * dst;
    int64_t DK, DV, N, heads, kv_heads, kv_len;
    float scale, softcap, m0, m1;
    float max_bias;
    uint32_t n_head_log2;

    explicit attention_op(ggml_tensor * op)
        : q(op->src[0]), k(op->src[1]), v(op->src[2]), mask(op->src[3]), sinks(op->src[4]), dst(op) {
        DK = k->ne[0], DV = v->ne[0], N = q->ne[1], heads = q->ne[2], kv_heads = k->ne[2], kv_len = k->ne[1];
        std::memcpy(&scale, (const float *) op->op_params + 0, sizeof(float));
        std::memcpy(&max_bias, (const float *) op->op_params + 1, sizeof(float));
        std::memcpy(&softcap, (const float *) op->op_params + 2, sizeof(float));
        if (softcap != 0.0f) {
            scale /= softcap;
        }
        n_head_log2 = 1u << (uint32_t) std::floor(std::log2((double) heads));
        m0 = std::pow(2.0f, -(max_bias) / n_head_log2);
        m1 = std::pow(2.0f, -(max_bias / 2.0f) / n_head_log2);
    }

    // ALiBi slope of query head h, as upstream computes it
    float slope(int64_t h) const {
        if (max_bias <= 0.0f) {
            return 1.0f;
        }
        return h < n_head_log2 ? std::pow(m0, (float) (h + 1)) : std::pow(m1, (float) (2 * (h - n_head_log2) + 1));
    }
};

// The end of one (query row iq1 of sequence iq3, head h): the sink's share of the softmax, if
// any, then acc / S into the op's output row (attention_rows.cpp).
void finish_row(const attention_op & a, float * acc, float M, float S, int64_t iq3, int64_t iq1, int64_t h);

// Query heads [h0, h1) of query row iq1 in sequence iq3 (attention_rows.cpp).
void attend_row(const attention_op & a, int64_t iq3, int64_t iq1, int64_t h0, int64_t h1);

// Query rows [r0, r1) of sequence iq3, every head (attention_tiled.cpp); r1 - r0 <= TILE_ROWS.
// From TILED_MIN_ROWS rows on, tiles beat rows one at a time even when half a tile is padding.
constexpr int64_t TILE_ROWS = 32;
constexpr int64_t TILED_MIN_ROWS = 16;
void attend_tile(const attention_op & a, int64_t iq3, int64_t r0, int64_t r1);

}  // namespace veclut
