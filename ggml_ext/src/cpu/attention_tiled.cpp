// Attention for many query rows (prefill): a tile of TILE_ROWS rows of one sequence, every head.
//
// Per block of positions the K and V rows are converted to F32 once and serve the whole tile.
// Scores are computed transposed, s[position][row], so the rows of the tile are the vector lanes:
// one K value broadcast against a column of the tile's (pre-scaled, transposed) queries, no
// horizontal sums, and the online softmax of the tile's rows runs in those same lanes. The mask
// is shared by all heads (a per-head mask goes to attention_rows.cpp), so it is read and
// transposed once per block; positions masked for every row of the tile are never read.

#include "attention_op.h"
#include "attention_math.h"

#include "ggml-cpu.h"

#include <algorithm>
#include <vector>

namespace veclut {

namespace {

constexpr int BLOCK = 32;                        // positions per softmax step
constexpr int LANES = (int) TILE_ROWS / 8;       // v8 vectors per column of the tile
constexpr int STEP  = 8 / LANES;                 // positions per step of the scores: 8 sums
static_assert(TILE_ROWS % 8 == 0, "the tile's rows fill whole vectors");

struct column {  // one value per row of the tile
    v8 part[LANES];
};

struct tile_scratch {
    std::vector<float> queries;     // [head][d][row]: the tile's queries times the scale, transposed
    std::vector<column> mask;       // [position of the block]: mask values of the tile's rows
    std::vector<float> keys, values;  // [used position][d], F32
    std::vector<column> scores;     // [used position]: scores, then softmax weights
    std::vector<column> M, S;       // [head]: running maximum and sum per row
    std::vector<float> out;         // [head][row][d]: weighted sums of V
    std::vector<int> positions;     // used positions of the block
    std::vector<float> mask_row;

    void fit(const attention_op & a) {
        queries.assign((size_t) a.heads * a.DK * TILE_ROWS, 0.0f);
        mask.resize(BLOCK);
        keys.resize((size_t) BLOCK * a.DK);
        values.resize((size_t) BLOCK * a.DV);
        scores.resize(BLOCK);
        M.resize(a.heads);
        S.resize(a.heads);
        out.assign((size_t) a.heads * TILE_ROWS * a.DV, 0.0f);
        positions.resize(BLOCK);
        mask_row.resize(BLOCK);
    }
};

// Loaded once, used STEP times: without this the compiler folds the load into each of the
// multiply-adds, and the loads, not the multiply-adds, set the pace.
inline void keep_in_register(v8 & x) {
#if defined(__GNUC__) && defined(__AVX__)  // one ymm register; elsewhere a v8 is two
    __asm__("" : "+x"(x));
#else
    (void) x;
#endif
}

inline v8 splat(float x) {
    return v8{} + x;
}

// out rows r and r + 1 (r + 1 < rows unless alone) += sum over i < n of w[i] * values[i]
void add_weighted_values(float * out0, float * out1, const column * weights, int lane_row, bool two, const float * values,
                         int n, int64_t dv) {
    auto weight = [&](int i, int row) { return weights[i].part[row / 8][row % 8]; };
    int64_t d = 0;
    for (; d + 32 <= dv; d += 32) {
        v8 a0 = load8(out0 + d), a1 = load8(out0 + d + 8), a2 = load8(out0 + d + 16), a3 = load8(out0 + d + 24);
        v8 b0 = two ? load8(out1 + d) : v8{}, b1 = two ? load8(out1 + d + 8) : v8{};
        v8 b2 = two ? load8(out1 + d + 16) : v8{}, b3 = two ? load8(out1 + d + 24) : v8{};
        for (int i = 0; i < n; ++i) {
            const float * v = values + i * dv + d;
            const v8 v0 = load8(v), v1 = load8(v + 8), v2 = load8(v + 16), v3 = load8(v + 24);
            const float p = weight(i, lane_row), q = two ? weight(i, lane_row + 1) : 0.0f;
            a0 += p * v0, a1 += p * v1, a2 += p * v2, a3 += p * v3;
            b0 += q * v0, b1 += q * v1, b2 += q * v2, b3 += q * v3;
        }
        store8(out0 + d, a0), store8(out0 + d + 8, a1), store8(out0 + d + 16, a2), store8(out0 + d + 24, a3);
        if (two) {
            store8(out1 + d, b0), store8(out1 + d + 8, b1), store8(out1 + d + 16, b2), store8(out1 + d + 24, b3);
        }
    }
    for (; d < dv; ++d) {
        float a = out0[d], b = two ? out1[d] : 0.0f;
        for (int i = 0; i < n; ++i) {
            a += weight(i, lane_row) * values[i * dv + d];
            b += (two ? weight(i, lane_row + 1) : 0.0f) * values[i * dv + d];
        }
        out0[d] = a;
        if (two) {
            out1[d] = b;
        }
    }
}

}  // namespace

void attend_tile(const attention_op & a, int64_t iq3, int64_t r0, int64_t r1) {
    const ggml_tensor * q = a.q, * k = a.k, * v = a.v, * mask = a.mask;
    const int rows = (int) (r1 - r0);
    const int64_t group = a.heads / a.kv_heads;
    const int64_t ik3 = iq3 / (q->ne[3] / k->ne[3]), iv3 = iq3 / (q->ne[3] / v->ne[3]);
    thread_local tile_scratch w;
    w.fit(a);

    for (int64_t h = 0; h < a.heads; ++h) {
        float * qt = w.queries.data() + h * a.DK * TILE_ROWS;
        for (int r = 0; r < rows; ++r) {
            const float * row = (const float *) ((const char *) q->data + (r0 + r) * q->nb[1] + h * q->nb[2] + iq3 * q->nb[3]);
            for (int64_t d = 0; d < a.DK; ++d) {
                qt[d * TILE_ROWS + r] = row[d] * a.scale;
            }
        }
        for (int l = 0; l < LANES; ++l) {
            w.M[h].part[l] = splat(-INFINITY);
            w.S[h].part[l] = v8{};
        }
    }

    for (int64_t c0 = 0; c0 < a.kv_len; c0 += BLOCK) {
        const int nb = (int) std::min<int64_t>(BLOCK, a.kv_len - c0);
        // the mask of the block, transposed; rows past the tile's end attend to nothing
        for (int j = 0; j < nb; ++j) {
            for (int l = 0; l < LANES; ++l) {
                w.mask[j].part[l] = splat(-INFINITY);
            }
        }
        for (int r = 0; r < rows; ++r) {
            if (mask == nullptr) {
                std::fill(w.mask_row.begin(), w.mask_row.begin() + nb, 0.0f);
            } else {
                const ggml_fp16_t * m = (const ggml_fp16_t *) ((const char *) mask->data + (r0 + r) * mask->nb[1] +
                                                                (iq3 % mask->ne[3]) * mask->nb[3]);
                ggml_cpu_fp16_to_fp32(m + c0, w.mask_row.data(), nb);
            }
            for (int j = 0; j < nb; ++j) {
                w.mask[j].part[r / 8][r % 8] = w.mask_row[j];
            }
        }
        int n = 0;
        for (int j = 0; j < nb; ++j) {
            bool used = false;
            for (int r = 0; r < rows && !used; ++r) {
                used = w.mask[j].part[r / 8][r % 8] != -INFINITY;
            }
            if (used) {
                w.mask[n] = w.mask[j];  // compacted in place: n <= j
                w.positions[n++] = j;
            }
        }
        if (n == 0) {
            continue;
        }

        for (int64_t g = 0; g < a.kv_heads; ++g) {
            for (int i = 0; i < n; ++i) {
                const int64_t pos = c0 + w.positions[i];
                ggml_cpu_fp16_to_fp32((const ggml_fp16_t *) ((const char *) k->data + pos * k->nb[1] + g * k->nb[2] + ik3 * k->nb[3]),
                                      w.keys.data() + i * a.DK, a.DK);
                ggml_cpu_fp16_to_fp32((const ggml_fp16_t *) ((const char *) v->data + pos * v->nb[1] + g * v->nb[2] + iv3 * v->nb[3]),
                                      w.values.data() + i * a.DV, a.DV);
            }
            for (int64_t h = g * group; h < (g + 1) * group; ++h) {
                const float * qt = w.queries.data() + h * a.DK * TILE_ROWS;
                const float slope = a.slope(h);
                column top;
                for (int l = 0; l < LANES; ++l) {
                    top.part[l] = splat(-INFINITY);
                }
                for (int i0 = 0; i0 < n; i0 += STEP) {
                    // STEP positions at once: eight independent sums, so the multiply-adds do not
                    // wait on each other, and each column of queries is loaded once for all STEP
                    const int m = std::min(STEP, n - i0);
                    column s[STEP] = {};
                    const float * key[STEP];
                    for (int i = 0; i < STEP; ++i) {
                        key[i] = w.keys.data() + (i0 + std::min(i, m - 1)) * a.DK;
                    }
                    for (int64_t d = 0; d < a.DK; ++d) {
                        for (int l = 0; l < LANES; ++l) {
                            v8 qd = load8(qt + d * TILE_ROWS + 8 * l);
                            keep_in_register(qd);
                            for (int i = 0; i < STEP; ++i) {
                                s[i].part[l] += key[i][d] * qd;
                            }
                        }
                    }
                    for (int i = 0; i < m; ++i) {
                        for (int l = 0; l < LANES; ++l) {
                            if (a.softcap != 0.0f) {
                                for (int e = 0; e < 8; ++e) {
                                    s[i].part[l][e] = a.softcap * std::tanh(s[i].part[l][e]);
                                }
                            }
                            s[i].part[l] += slope * w.mask[i0 + i].part[l];  // -INFINITY stays
                            top.part[l] = s[i].part[l] > top.part[l] ? s[i].part[l] : top.part[l];
                        }
                        w.scores[i0 + i] = s[i];
                    }
                }
                float * out = w.out.data() + h * TILE_ROWS * a.DV;
                for (int l = 0; l < LANES; ++l) {
                    const v8 old = w.M[h].part[l];
                    const v8 now = top.part[l] > old ? top.part[l] : old;
                    const v8i none = now == -INFINITY;  // no position so far: weights 0, nothing to rescale
                    const v8 shrink = none ? splat(1.0f) : exp8(old - now);
                    v8 sum = {};
                    for (int i = 0; i < n; ++i) {
                        const v8 p = none ? v8{} : exp8(w.scores[i].part[l] - now);
                        w.scores[i].part[l] = p;
                        sum += p;
                    }
                    w.S[h].part[l] = w.S[h].part[l] * shrink + sum;
                    w.M[h].part[l] = now;
                    for (int e = 0; e < 8 && 8 * l + e < rows; ++e) {
                        if (shrink[e] != 1.0f) {
                            scale_row(out + (8 * l + e) * a.DV, a.DV, shrink[e]);
                        }
                    }
                }
                for (int r = 0; r < rows; r += 2) {
                    add_weighted_values(out + r * a.DV, out + (r + 1) * a.DV, w.scores.data(), r, r + 1 < rows, w.values.data(), n, a.DV);
                }
            }
        }
    }

    for (int64_t h = 0; h < a.heads; ++h) {
        for (int r = 0; r < rows; ++r) {
            finish_row(a, w.out.data() + (h * TILE_ROWS + r) * a.DV, w.M[h].part[r / 8][r % 8], w.S[h].part[r / 8][r % 8],
                       iq3, r0 + r, h);
        }
    }
}

}  // namespace veclut
