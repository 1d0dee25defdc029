// test-attention: veclut's FLASH_ATTN_EXT (src/cpu/attention.cpp) against a float64 reference and
// against upstream's kernel on the same inputs, over head sizes, grouped-query heads, query rows
// (one at a time below 16, tiles of 32 from 16), KV lengths, sequences, masks, soft-capping, ALiBi,
// sinks and thread counts.
//
// K and V are views of a cache laid out as llama.cpp's ([heads x head size] per position), and
// every position masked for all rows holds NaN, as an unused cache cell may: a kernel that reads
// one poisons its row. One JSON line per case; the exit status is non-zero if any case fails.

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "../tools/cpu-backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

struct attention_case {
    int64_t dk, dv, heads, kv_heads, rows, kv_len, seqs;
    const char * mask;  // "none", "causal" (row r sees r + kv_len / 2 positions), "sparse" (random holes)
    float softcap, max_bias;
    bool sinks;
};

const attention_case CASES[] = {
    {64, 64, 8, 8, 1, 256, 1, "causal", 0.0f, 0.0f, false},
    {96, 96, 16, 16, 1, 300, 1, "causal", 0.0f, 0.0f, false},   // bitnet-large heads, a partial block
    {128, 128, 32, 8, 1, 512, 1, "causal", 0.0f, 0.0f, false},  // grouped-query (Llama 3)
    {128, 128, 32, 8, 4, 200, 1, "sparse", 0.0f, 0.0f, false},  // batched decode, holes in the mask
    {80, 80, 12, 4, 7, 129, 2, "causal", 0.0f, 0.0f, false},    // two sequences, 7 query rows
    {40, 40, 4, 2, 3, 33, 1, "none", 0.0f, 0.0f, false},        // head size not a multiple of 32
    {256, 256, 8, 4, 2, 96, 1, "causal", 50.0f, 0.0f, false},   // Gemma-style soft-capping
    {64, 64, 16, 16, 1, 160, 1, "causal", 0.0f, 8.0f, false},   // ALiBi
    {64, 64, 8, 2, 5, 100, 1, "sparse", 0.0f, 0.0f, true},      // sinks (gpt-oss)
    {192, 128, 16, 1, 2, 70, 1, "causal", 0.0f, 0.0f, false},   // DK != DV, one KV head
    {576, 512, 16, 1, 1, 64, 1, "causal", 0.0f, 0.0f, false},   // DeepSeek MLA sizes
    {64, 64, 2, 1, 1, 600, 1, "causal", 0.0f, 0.0f, false},     // fewer heads than 3 threads: upstream's
    {64, 64, 8, 8, 15, 64, 1, "causal", 0.0f, 0.0f, false},     // the most rows one at a time
    {64, 64, 8, 8, 16, 64, 1, "causal", 0.0f, 0.0f, false},     // the fewest rows in tiles
    {64, 64, 8, 8, 33, 64, 1, "causal", 0.0f, 0.0f, false},     // a full tile and one row
    {96, 96, 16, 16, 512, 512, 1, "causal", 0.0f, 0.0f, false}, // bitnet-large prefill
    {128, 128, 32, 8, 100, 356, 1, "causal", 0.0f, 0.0f, false},// grouped-query, a partial tile
    {80, 80, 12, 4, 40, 129, 2, "sparse", 0.0f, 0.0f, false},   // two sequences, holes
    {40, 40, 4, 2, 33, 33, 1, "none", 0.0f, 0.0f, false},       // no mask, head size not a multiple of 32
    {256, 256, 8, 4, 70, 96, 1, "causal", 50.0f, 0.0f, false},  // soft-capping
    {64, 64, 16, 16, 64, 160, 1, "causal", 0.0f, 8.0f, false},  // ALiBi
    {64, 64, 8, 2, 65, 100, 1, "sparse", 0.0f, 0.0f, true},     // sinks
    {192, 128, 16, 1, 20, 70, 1, "causal", 0.0f, 0.0f, false},  // DK != DV, one KV head
};

const int THREADS[] = {1, 2, 3};

float half_round(float x) {
    return ggml_fp16_to_fp32(ggml_fp32_to_fp16(x));
}

struct inputs {
    std::vector<float> q, k, v, mask, sinks;  // k, v, mask hold the values their F16 tensors store
};

inputs make_inputs(const attention_case & c, std::mt19937 & rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    inputs in;
    in.q.resize(c.dk * c.rows * c.heads * c.seqs);
    in.k.resize(c.dk * c.kv_heads * c.kv_len * c.seqs);
    in.v.resize(c.dv * c.kv_heads * c.kv_len * c.seqs);
    for (float & x : in.q) x = normal(rng);
    for (float & x : in.k) x = half_round(normal(rng));
    for (float & x : in.v) x = half_round(normal(rng));
    in.mask.assign(c.kv_len * c.rows, 0.0f);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    for (int64_t r = 0; r < c.rows; ++r) {
        for (int64_t j = 0; j < c.kv_len; ++j) {
            float & m = in.mask[r * c.kv_len + j];
            if (std::string(c.mask) == "causal") {
                m = j <= r + c.kv_len / 2 ? 0.0f : -INFINITY;
            } else if (std::string(c.mask) == "sparse") {
                m = unit(rng) < 0.3f ? -INFINITY : half_round(-unit(rng));
            }
        }
    }
    // positions no row attends to: NaN in the cache, never to be read (upstream's kernel for 64
    // rows or more reads them, so only below that)
    for (int64_t j = 0; j < c.kv_len && c.rows < 64; ++j) {
        bool used = false;
        for (int64_t r = 0; r < c.rows; ++r) used |= in.mask[r * c.kv_len + j] != -INFINITY;
        if (used) continue;
        for (int64_t s = 0; s < c.seqs; ++s) {
            std::fill_n(&in.k[(s * c.kv_len + j) * c.kv_heads * c.dk], c.kv_heads * c.dk, NAN);
            std::fill_n(&in.v[(s * c.kv_len + j) * c.kv_heads * c.dv], c.kv_heads * c.dv, NAN);
        }
    }
    if (c.sinks) {
        in.sinks.resize(c.heads);
        for (float & x : in.sinks) x = normal(rng);
    }
    return in;
}

float alibi_slope(const attention_case & c, int64_t h) {
    if (c.max_bias <= 0.0f) return 1.0f;
    const int64_t log2 = 1ll << (int64_t) std::floor(std::log2((double) c.heads));
    const double m0 = std::pow(2.0, -c.max_bias / log2), m1 = std::pow(2.0, -c.max_bias / 2.0 / log2);
    return (float) (h < log2 ? std::pow(m0, h + 1) : std::pow(m1, 2 * (h - log2) + 1));
}

// out[((s * rows + r) * heads + h) * dv + d], as the op lays out its result
std::vector<double> reference(const attention_case & c, const inputs & in, float scale) {
    std::vector<double> out(c.dv * c.heads * c.rows * c.seqs, 0.0);
    const int64_t group = c.heads / c.kv_heads;
    for (int64_t s = 0; s < c.seqs; ++s)
    for (int64_t r = 0; r < c.rows; ++r)
    for (int64_t h = 0; h < c.heads; ++h) {
        const int64_t g = h / group;
        const float * q = &in.q[((s * c.heads + h) * c.rows + r) * c.dk];
        std::vector<double> score;
        std::vector<int64_t> pos;
        for (int64_t j = 0; j < c.kv_len; ++j) {
            const float m = in.mask[r * c.kv_len + j];
            if (m == -INFINITY) continue;
            const float * k = &in.k[((s * c.kv_len + j) * c.kv_heads + g) * c.dk];
            double x = 0;
            for (int64_t d = 0; d < c.dk; ++d) x += (double) q[d] * k[d];
            x *= scale;
            if (c.softcap != 0.0f) x = c.softcap * std::tanh(x / c.softcap);
            score.push_back(x + (double) alibi_slope(c, h) * m);
            pos.push_back(j);
        }
        double top = c.sinks ? in.sinks[h] : -INFINITY;
        for (double x : score) top = std::max(top, x);
        double sum = c.sinks ? std::exp(in.sinks[h] - top) : 0.0;
        double * o = &out[((s * c.rows + r) * c.heads + h) * c.dv];
        for (size_t i = 0; i < score.size(); ++i) {
            const double p = std::exp(score[i] - top);
            sum += p;
            const float * v = &in.v[((s * c.kv_len + pos[i]) * c.kv_heads + g) * c.dv];
            for (int64_t d = 0; d < c.dv; ++d) o[d] += p * v[d];
        }
        for (int64_t d = 0; d < c.dv; ++d) o[d] = sum > 0 ? o[d] / sum : 0.0;
    }
    return out;
}

std::vector<float> run(const attention_case & c, const inputs & in, float scale, int threads) {
    const auto & cpu = veclut_cpu::cpu("test-attention");
    ggml_init_params params = {ggml_tensor_overhead() * 16 + ggml_graph_overhead(), nullptr, true};
    ggml_context * ctx = ggml_init(params);
    ggml_tensor * q = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, c.dk, c.rows, c.heads, c.seqs);
    // the caches: all heads of a position side by side, positions in sequence
    ggml_tensor * kc = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, c.dk * c.kv_heads, c.kv_len, c.seqs);
    ggml_tensor * vc = ggml_new_tensor_3d(ctx, GGML_TYPE_F16, c.dv * c.kv_heads, c.kv_len, c.seqs);
    ggml_tensor * k = ggml_view_4d(ctx, kc, c.dk, c.kv_len, c.kv_heads, c.seqs, kc->nb[1], c.dk * sizeof(ggml_fp16_t), kc->nb[2], 0);
    ggml_tensor * v = ggml_view_4d(ctx, vc, c.dv, c.kv_len, c.kv_heads, c.seqs, vc->nb[1], c.dv * sizeof(ggml_fp16_t), vc->nb[2], 0);
    ggml_tensor * mask = std::string(c.mask) == "none" && c.max_bias == 0.0f ? nullptr
                         : ggml_new_tensor_2d(ctx, GGML_TYPE_F16, c.kv_len, c.rows);
    ggml_tensor * sinks = c.sinks ? ggml_new_tensor_1d(ctx, GGML_TYPE_F32, c.heads) : nullptr;
    ggml_tensor * out = ggml_flash_attn_ext(ctx, q, k, v, mask, scale, c.max_bias, c.softcap);
    ggml_flash_attn_ext_add_sinks(out, sinks);
    ggml_cgraph * graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, out);

    ggml_backend_t backend = cpu.init();
    cpu.set_n_threads(backend, threads);
    ggml_backend_buffer_t buffer = ggml_backend_alloc_ctx_tensors(ctx, backend);
    ggml_backend_tensor_set(q, in.q.data(), 0, ggml_nbytes(q));
    auto set_half = [](ggml_tensor * t, const std::vector<float> & x) {
        std::vector<ggml_fp16_t> h(x.size());
        ggml_fp32_to_fp16_row(x.data(), h.data(), (int64_t) x.size());
        ggml_backend_tensor_set(t, h.data(), 0, ggml_nbytes(t));
    };
    set_half(kc, in.k);
    set_half(vc, in.v);
    if (mask) set_half(mask, in.mask);
    if (sinks) ggml_backend_tensor_set(sinks, in.sinks.data(), 0, ggml_nbytes(sinks));
    ggml_backend_graph_compute(backend, graph);
    std::vector<float> result(ggml_nelements(out));
    ggml_backend_tensor_get(out, result.data(), 0, ggml_nbytes(out));
    ggml_backend_buffer_free(buffer);
    ggml_backend_free(backend);
    ggml_free(ctx);
    return result;
}

// largest error relative to the largest reference value (NaN counts as infinitely wrong)
double error(const std::vector<float> & got, const std::vector<double> & ref) {
    double top = 1e-30, worst = 0;
    for (double r : ref) top = std::max(top, std::fabs(r));
    for (size_t i = 0; i < ref.size(); ++i) {
        const double e = std::fabs(got[i] - ref[i]);
        worst = std::isnan(e) ? INFINITY : std::max(worst, e);
    }
    return worst / top;
}

}  // namespace

int main() {
    const auto & cpu = veclut_cpu::cpu("test-attention");
    std::mt19937 rng(42);
    int failed = 0;
    for (const attention_case & c : CASES) {
        const inputs in = make_inputs(c, rng);
        const float scale = 1.0f / std::sqrt((float) c.dk);
        const std::vector<double> ref = reference(c, in, scale);
        for (int threads : THREADS) {
            cpu.set_attention(0);
            const long before = cpu.attention_runs();
            const double upstream = error(run(c, in, scale, threads), ref);
            const bool upstream_ran_veclut = cpu.attention_runs() != before;
            cpu.set_attention(1);
            const std::vector<float> got = run(c, in, scale, threads);
            const bool veclut_ran = cpu.attention_runs() != before;
            const double ours = error(got, ref);
            // veclut takes every case with at least as many (row, head) pairs as threads
            const bool expected_veclut = c.rows * c.seqs * c.heads >= threads;
            // F32 accumulation: a few float roundings of the largest value; upstream's F16
            // accumulator of V is allowed its own (much larger) error
            const bool pass = (!veclut_ran || ours < 2e-5) && upstream < 1e-2 && !upstream_ran_veclut &&
                              veclut_ran == expected_veclut;
            failed += !pass;
            std::printf("{\"dk\": %lld, \"dv\": %lld, \"heads\": %lld, \"kv_heads\": %lld, \"rows\": %lld, \"kv_len\": %lld, "
                        "\"seqs\": %lld, \"mask\": \"%s\", \"softcap\": %g, \"max_bias\": %g, \"sinks\": %s, \"threads\": %d, "
                        "\"veclut_ran\": %s, \"error\": %.3g, \"upstream_error\": %.3g, \"pass\": %s}\n",
                        (long long) c.dk, (long long) c.dv, (long long) c.heads, (long long) c.kv_heads, (long long) c.rows,
                        (long long) c.kv_len, (long long) c.seqs, c.mask, c.softcap, c.max_bias, c.sinks ? "true" : "false",
                        threads, veclut_ran ? "true" : "false", ours, upstream, pass ? "true" : "false");
        }
    }
    std::fprintf(stderr, "test-attention: %d case(s) failed\n", failed);
    return failed ? 1 : 0;
}
