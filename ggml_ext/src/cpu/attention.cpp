// FLASH_ATTN_EXT for a few query rows on an F16 KV cache (attention.h).
//
// One unit of work is one query row of one sequence against one KV head, for every query head
// that shares that KV head (grouped-query attention reads each K and V row once for the group).
// Positions go in blocks of BLOCK: the mask is read first, and positions masked for every head
// are never read (the cache holds garbage there, possibly NaN, as upstream also assumes). The
// softmax is online as in upstream (arXiv 2112.05682), once per block instead of per position;
// V is accumulated in F32 (upstream accumulates F16 V in F16), so results equal upstream's up to
// rounding and are closer to the exact value (tests/test-attention.cpp checks both).
//
// Vectors are GCC/Clang vector extensions: each ggml-cpu variant compiles them for its own ISA.

#include "attention.h"

#include "ggml-cpu.h"
#include "ggml-impl.h"
#include "veclut.h"
#include "vec.h"  // ggml_vec_soft_max_f32: exp(x - max) and its sum, SIMD per variant

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__F16C__)
#include <immintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace veclut {

namespace {

constexpr int BLOCK        = 32;   // KV positions per softmax update: their F32 K and V rows stay in L1
constexpr int HEAD_GROUP   = 8;    // query heads per pass over a KV head's rows
constexpr int64_t MAX_ROWS = 63;   // more query rows go to upstream's tiled kernel (GGML_FA_TILE_Q = 64)
constexpr int64_t MAX_DIM  = 576;  // head sizes of current models (DeepSeek's 576 included)

std::atomic<bool> & enabled() {
    static std::atomic<bool> on{[] {
        const char * v = std::getenv("VECLUT_ATTENTION");
        return v == nullptr || std::strcmp(v, "0") != 0;
    }()};
    return on;
}

std::atomic<long> runs{0};

typedef float v8 __attribute__((vector_size(32)));

inline v8 load8(const float * p) {
    v8 v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

inline void store8(float * p, v8 v) {
    std::memcpy(p, &v, sizeof(v));
}

inline float sum8(v8 v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

// 8 halves to floats: one instruction where the ISA has it (ggml's own conversion elsewhere)
inline v8 half8(const ggml_fp16_t * p) {
#if defined(__F16C__)
    return (v8) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p));
#elif defined(__ARM_NEON) && defined(__aarch64__)
    const float16x8_t h = vld1q_f16((const __fp16 *) p);
    const float32x4_t lo = vcvt_f32_f16(vget_low_f16(h)), hi = vcvt_high_f32_f16(h);
    v8 r;
    std::memcpy(&r, &lo, sizeof(lo));
    std::memcpy((char *) &r + sizeof(lo), &hi, sizeof(hi));
    return r;
#else
    v8 r;
    for (int i = 0; i < 8; ++i) {
        r[i] = GGML_CPU_FP16_TO_FP32(p[i]);
    }
    return r;
#endif
}

// q (F32) . k (F16) over n
float dot_f16(const float * q, const ggml_fp16_t * k, int64_t n) {
    v8 s0 = {}, s1 = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 += load8(q + i) * half8(k + i);
        s1 += load8(q + i + 8) * half8(k + i + 8);
    }
    for (; i + 8 <= n; i += 8) {
        s0 += load8(q + i) * half8(k + i);
    }
    float s = sum8(s0 + s1);
    for (; i < n; ++i) {
        s += q[i] * GGML_CPU_FP16_TO_FP32(k[i]);
    }
    return s;
}

void scale_row(float * x, int64_t n, float f) {
    for (int64_t i = 0; i < n; ++i) {
        x[i] *= f;
    }
}

// acc[0..n) += p * v[0..n)
void add_weighted_row(float * acc, float p, const ggml_fp16_t * v, int64_t n) {
    int64_t d = 0;
    for (; d + 8 <= n; d += 8) {
        store8(acc + d, load8(acc + d) + p * half8(v + d));
    }
    for (; d < n; ++d) {
        acc[d] += p * GGML_CPU_FP16_TO_FP32(v[d]);
    }
}

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
void run_row(const attention_op & a, scratch & w, int64_t iq3, int64_t iq1, int64_t h0, int64_t h1) {
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
        const int64_t iq2 = h0 + h;
        float * acc = w.acc.data() + h * a.DV;
        float M = w.M[h], S = w.S[h];
        if (a.sinks) {  // one more score with no value row: it only takes a share of the softmax
            const float sink = ((const float *) a.sinks->data)[iq2];
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
        float * out = (float *) ((char *) dst->data + (iq3 * dst->ne[2] * dst->ne[1] + iq2 + iq1 * dst->ne[1]) * dst->nb[1]);
        for (int64_t d = 0; d < a.DV; ++d) {
            out[d] = acc[d] * inv;
        }
    }
}

bool claims(const ggml_tensor * op) {
    const ggml_tensor * q = op->src[0], * k = op->src[1], * v = op->src[2], * mask = op->src[3], * sinks = op->src[4];
    const int32_t precision = op->op_params[3];
    return (precision == GGML_PREC_DEFAULT || precision == GGML_PREC_F32) &&
           q->type == GGML_TYPE_F32 && k->type == GGML_TYPE_F16 && v->type == GGML_TYPE_F16 &&
           (mask == nullptr || mask->type == GGML_TYPE_F16) && (sinks == nullptr || sinks->type == GGML_TYPE_F32) &&
           q->nb[0] == sizeof(float) && k->nb[0] == sizeof(ggml_fp16_t) && v->nb[0] == sizeof(ggml_fp16_t) &&
           op->type == GGML_TYPE_F32 && op->nb[0] == sizeof(float) &&
           q->ne[1] <= MAX_ROWS && k->ne[0] <= MAX_DIM && v->ne[0] <= MAX_DIM && q->ne[0] == k->ne[0] &&
           k->ne[2] > 0 && q->ne[2] % k->ne[2] == 0 && q->ne[2] % v->ne[2] == 0 && v->ne[2] == k->ne[2] &&
           q->ne[3] % k->ne[3] == 0 && q->ne[3] % v->ne[3] == 0;
}

}  // namespace

bool attention_traits::work_size(int, const struct ggml_tensor *, size_t &) {
    return false;  // per-thread scratch of its own; upstream's size stays for the fallback below
}

bool attention_traits::compute_forward(struct ggml_compute_params * params, struct ggml_tensor * op) {
    const attention_op a(op);
    const int ith = params->ith, nth = params->nth;
    // A unit is one query row with a range of its heads: whole rows while there are enough of
    // them for the threads, else each row's heads split into up to nth ranges.
    const int64_t rows = a.q->ne[3] * a.N;
    const int64_t ranges = std::min<int64_t>(a.heads, (nth + rows - 1) / rows);
    const int64_t units = rows * ranges;
    if (units < nth) {  // fewer (row, head) pairs than threads: upstream splits positions instead
        return false;
    }
    thread_local scratch w;
    for (int64_t u = units * ith / nth; u < units * (ith + 1) / nth; ++u) {
        const int64_t row = u / ranges, range = u % ranges;
        run_row(a, w, row / a.N, row % a.N, a.heads * range / ranges, a.heads * (range + 1) / ranges);
    }
    if (ith == 0) {
        runs.fetch_add(1, std::memory_order_relaxed);
    }
    return true;
}

attention_traits * attention_for(const struct ggml_tensor * op) {
    static attention_traits traits;
    if (op->op != GGML_OP_FLASH_ATTN_EXT || !enabled().load(std::memory_order_relaxed) || !claims(op)) {
        return nullptr;
    }
    return &traits;
}

}  // namespace veclut

extern "C" int veclut_set_attention(int on) {
    return veclut::enabled().exchange(on != 0) ? 1 : 0;
}

extern "C" long veclut_attention_runs(void) {
    return veclut::runs.load(std::memory_order_relaxed);
}
