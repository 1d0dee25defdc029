// Attention for a few query rows (decode, batched decode): one row at a time, all positions.
//
// Positions go in blocks of BLOCK: the mask is read first, and positions masked for every head
// are never read (the cache holds garbage there, possibly NaN, as upstream also assumes). The
// softmax is online as in upstream (arXiv 2112.05682), once per block instead of per position;
// V is accumulated in F32 (upstream accumulates F16 V in F16).

#include "attention_op.h"
#include "attention_math.h"

#include "ggml-cpu.h"
#include "vec.h"  // ggml_vec_soft_max_f32: exp(x - max) and its sum, SIMD per variant

#include <algorithm>
#include <vector>

namespace veclut {

namespace {

constexpr int BLOCK = 32;  // KV positions per softmax update

struct scratch {
    std::vector<float> scores, mask_values, acc, M, S, slopes;
    std::vector<const float *> mask_of;  // per query head: its mask values of the block
    std::vector<int> positions;

    void fit(const attention_op & a, int64_t q_heads) {
        scores.resize((size_t) q_heads * BLOCK);
        mask_values.resize((size_t) q_heads * BLOCK);
        acc.resize((size_t) q_heads * a.DV);
        M.resize(q_heads);
        S.resize(q_heads);
        slopes.resize(q_heads);
        mask_of.resize(q_heads);
        positions.resize(BLOCK);
    }
};

// Query heads [h0, h1) of query row iq1 in sequence iq3, against the KV heads they use.
// Blocks of positions are the outer loop, so each block's K and V rows of all those heads (a
// contiguous stretch of the cache per position) are read together, and the next block's are
// prefetched meanwhile: walking one head at a time through the cache strides by a whole cache row
// per position, which the hardware prefetchers follow poorly.
void attend_rows(const attention_op & a, scratch & w, int64_t iq3, int64_t iq1, int64_t h0, int64_t h1) {
    const ggml_tensor * q = a.q, * k = a.k, * v = a.v, * mask = a.mask;
    const int64_t group = a.heads / a.kv_heads;  // query heads per KV head
    const int64_t nq = h1 - h0;
    const int64_t g0 = h0 / group, g1 = (h1 - 1) / group + 1;  // KV heads [g0, g1)
    const int64_t ik3 = iq3 / (q->ne[3] / k->ne[3]);
    const int64_t iv3 = iq3 / (q->ne[3] / v->ne[3]);
    w.fit(a, nq);

    auto q_row = [&](int64_t h) {
        return (const float *) ((const char *) q->data + iq1 * q->nb[1] + (h0 + h) * q->nb[2] + iq3 * q->nb[3]);
    };
    auto mask_row = [&](int64_t h) -> const ggml_fp16_t * {
        if (mask == nullptr) {
            return nullptr;
        }
        return (const ggml_fp16_t *) ((const char *) mask->data + iq1 * mask->nb[1] + ((h0 + h) % mask->ne[2]) * mask->nb[2] +
                                      (iq3 % mask->ne[3]) * mask->nb[3]);
    };
    float * slopes = w.slopes.data();
    for (int64_t h = 0; h < nq; ++h) {
        slopes[h] = a.slope(h0 + h);
    }
    std::fill(w.M.begin(), w.M.end(), -INFINITY);
    std::fill(w.S.begin(), w.S.end(), 0.0f);
    std::fill(w.acc.begin(), w.acc.end(), 0.0f);

    const char * k_base = (const char *) k->data + ik3 * k->nb[3];
    const char * v_base = (const char *) v->data + iv3 * v->nb[3];

    for (int64_t c0 = 0; c0 < a.kv_len; c0 += BLOCK) {
        const int nb = (int) std::min<int64_t>(BLOCK, a.kv_len - c0);

        // mask values of the block per query head; heads sharing a mask row share one conversion
        if (mask != nullptr) {
            const ggml_fp16_t * converted = nullptr;
            for (int64_t h = 0; h < nq; ++h) {
                const ggml_fp16_t * m = mask_row(h);
                if (m != converted) {
                    converted = m;
                    ggml_cpu_fp16_to_fp32(m + c0, w.mask_values.data() + h * BLOCK, nb);
                    w.mask_of[h] = w.mask_values.data() + h * BLOCK;
                } else {
                    w.mask_of[h] = w.mask_of[h - 1];
                }
            }
        }
        // positions some head attends to; the others are never read
        int n = 0;
        for (int j = 0; j < nb; ++j) {
            bool used = mask == nullptr;
            for (int64_t h = 0; h < nq && !used; ++h) {
                used = w.mask_of[h][j] != -INFINITY;
            }
            if (used) {
                w.positions[n++] = j;
            }
        }
        if (n == 0) {
            continue;
        }
        // Scores, position by position: a position's K rows of all heads lie side by side in the
        // cache, so the reads run forward through it and the hardware prefetchers follow.
        for (int i = 0; i < n; ++i) {
            const int64_t pos = c0 + w.positions[i];
            for (int64_t g = g0; g < g1; ++g) {
                const ggml_fp16_t * k_row = (const ggml_fp16_t *) (k_base + g * k->nb[2] + pos * k->nb[1]);
                for (int64_t h = std::max(g * group, h0) - h0; h < std::min((g + 1) * group, h1) - h0; ++h) {
                    float x = dot_f16(q_row(h), k_row, a.DK) * a.scale;
                    if (a.softcap != 0.0f) {
                        x = a.softcap * std::tanh(x);
                    }
                    if (mask != nullptr) {
                        x += slopes[h] * w.mask_of[h][w.positions[i]];
                    }
                    w.scores[h * BLOCK + i] = x;
                }
            }
        }
        // one online-softmax step per head and block: scores become weights exp(s - M)
        for (int64_t h = 0; h < nq; ++h) {
            float * s = w.scores.data() + h * BLOCK;
            const float block_max = *std::max_element(s, s + n);
            if (block_max == -INFINITY) {
                std::fill(s, s + n, 0.0f);  // this head attends to none of the block
                continue;
            }
            if (block_max > w.M[h]) {
                if (w.M[h] != -INFINITY) {
                    const float shrink = std::exp(w.M[h] - block_max);
                    scale_row(w.acc.data() + h * a.DV, a.DV, shrink);
                    w.S[h] *= shrink;
                }
                w.M[h] = block_max;
            }
            w.S[h] += (float) ggml_vec_soft_max_f32(n, s, s, w.M[h]);
        }
        // values, position by position as the keys
        for (int i = 0; i < n; ++i) {
            const int64_t pos = c0 + w.positions[i];
            for (int64_t g = g0; g < g1; ++g) {
                const ggml_fp16_t * v_row = (const ggml_fp16_t *) (v_base + g * v->nb[2] + pos * v->nb[1]);
                for (int64_t h = std::max(g * group, h0) - h0; h < std::min((g + 1) * group, h1) - h0; ++h) {
                    add_weighted_row(w.acc.data() + h * a.DV, w.scores[h * BLOCK + i], v_row, a.DV);
                }
            }
        }
    }

    for (int64_t h = 0; h < nq; ++h) {
        finish_row(a, w.acc.data() + h * a.DV, w.M[h], w.S[h], iq3, iq1, h0 + h);
    }
}

}  // namespace

void finish_row(const attention_op & a, float * acc, float M, float S, int64_t iq3, int64_t iq1, int64_t h) {
    if (a.sinks) {  // one more score with no value row: it only takes a share of the softmax
        const float sink = ((const float *) a.sinks->data)[h];
        if (sink > M) {
            const float shrink = std::exp(M - sink);
            scale_row(acc, a.DV, shrink);
            S = S * shrink + 1.0f;
        } else {
            S += std::exp(sink - M);
        }
    }
    const float inv = S == 0.0f ? 0.0f : 1.0f / S;
    const ggml_tensor * dst = a.dst;
    float * out = (float *) ((char *) dst->data + (iq3 * dst->ne[2] * dst->ne[1] + h + iq1 * dst->ne[1]) * dst->nb[1]);
    for (int64_t d = 0; d < a.DV; ++d) {
        out[d] = acc[d] * inv;
    }
}

void attend_row(const attention_op & a, int64_t iq3, int64_t iq1, int64_t h0, int64_t h1) {
    thread_local scratch w;
    attend_rows(a, w, iq3, iq1, h0, h1);
}

}  // namespace veclut
