// The GEMM measurement shared by bench-veclut (veclut's and upstream's kernels) and
// bench-peer-gemm (the same measurement compiled against a peer runtime's ggml): the same random
// ternary weights, the same weight rotation through DRAM, the same timing and JSON lines, so
// their GOPS can be divided. Only public ggml API that both ggml trees share is used; the
// includer says how it reaches the CPU backend (cpu_api: through ggml's registry, or directly).
//
// The weights are rotated through enough copies (each a separate tensor) that their total
// exceeds --min-mib (default 96 MiB, three times a 32 MiB L3), so every MUL_MAT streams its
// weights from DRAM as in a real model; a repetition runs a window of consecutive copies (all of
// them for a fast MUL_MAT, one when one MUL_MAT lasts --min-seconds) and the time of one MUL_MAT
// is the window's time divided by its copies. Repeated --reps times: median, min, max.
#pragma once

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "../tools/arg-lists.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace gemm_timing {

struct options {
    std::vector<std::pair<int64_t, int64_t>> shapes = {{4096, 4096}, {14336, 4096}};
    std::vector<int64_t> tokens = {1, 8, 32, 256};
    std::vector<int> threads = {1, 2};
    std::vector<std::string> types;
    int reps = 7;
    double min_bytes = 96.0 * 1024 * 1024;
    double min_seconds = 0.1;  // each repetition lasts at least this long
    unsigned seed = 42;
    bool bandwidth = false;
    bool cpu_time = false;  // time by the process's CPU time: A/B comparisons on a busy machine
};

// How a program stores one of its type names: ggml type, buffer type, and the name of the type
// its speed is divided by in the ratio lines ("" for none). type == GGML_TYPE_COUNT: unknown.
struct type_spec {
    ggml_type type;
    ggml_backend_buffer_type_t buft;
    std::string baseline;
};
using type_resolver = std::function<type_spec(const std::string &)>;

// How the program starts the CPU backend and sets its thread count.
struct cpu_api {
    std::function<ggml_backend_t()> init;
    std::function<void(ggml_backend_t, int)> set_n_threads;
};

inline std::string program = "gemm";  // the includer's name, for its messages

[[noreturn]] inline void fail(const std::string & why) {
    fprintf(stderr, "%s: %s\n", program.c_str(), why.c_str());
    exit(1);
}

// Parses the options both programs share; `usage` prints the program's own help and exits 2.
inline options parse(int argc, char ** argv, const type_resolver & resolve, void (*usage)(const char *)) {
    options o;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string { if (i + 1 >= argc) usage(("missing value for " + a).c_str()); return argv[++i]; };
        if (a == "--shapes") {
            o.shapes = veclut_args::shapes(next());
        } else if (a == "--tokens") {
            o.tokens = veclut_args::int64s(next());
        } else if (a == "--threads") {
            o.threads = veclut_args::ints(next());
        } else if (a == "--types") {
            o.types = veclut_args::strings(next());
        } else if (a == "--reps") {
            o.reps = std::stoi(next());
        } else if (a == "--min-mib") {
            o.min_bytes = std::stod(next()) * 1024 * 1024;
        } else if (a == "--min-seconds") {
            o.min_seconds = std::stod(next());
        } else if (a == "--seed") {
            o.seed = (unsigned) std::stoul(next());
        } else if (a == "--bandwidth") {
            o.bandwidth = true;
        } else if (a == "--cpu-time") {
            o.cpu_time = true;
        } else if (a == "-h" || a == "--help") {
            usage("help");
        } else {
            usage(("unknown argument " + a).c_str());
        }
    }
    for (const auto & s : o.shapes) {
        if (s.first < 1 || s.second < 256 || s.second % 256 != 0) usage("shapes are MxK with M >= 1 and K a positive multiple of 256");
    }
    for (const auto & t : o.types) {
        if (resolve(t).type == GGML_TYPE_COUNT) usage(("unknown type " + t).c_str());
    }
    if (o.reps < 1) usage("--reps must be >= 1");
    return o;
}

// Weight copies of one type: `copies` tensors holding the same quantized data.
struct weight_set {
    ggml_context * ctx = nullptr;
    ggml_backend_buffer_t buf = nullptr;
    std::vector<ggml_tensor *> copies;
    size_t bytes = 0;  // of one copy as ggml stores it (file size)
    weight_set() = default;
    weight_set(const weight_set &) = delete;
    ~weight_set() { if (buf) ggml_backend_buffer_free(buf); if (ctx) ggml_free(ctx); }
};

inline void make_weights(weight_set & ws, const std::string & name, const type_spec & t, int64_t M, int64_t K,
                         const std::vector<float> & w, double min_bytes) {
    const size_t row = ggml_row_size(t.type, K);
    ws.bytes = row * M;
    const int n = std::max(2, (int) std::ceil(min_bytes / (double) ws.bytes));
    std::vector<uint8_t> q(ws.bytes);
    ggml_quantize_chunk(t.type, w.data(), q.data(), 0, M, K, nullptr);
    ggml_init_params ip = {ggml_tensor_overhead() * (n + 1), nullptr, true};
    ws.ctx = ggml_init(ip);
    for (int i = 0; i < n; ++i) {
        ws.copies.push_back(ggml_new_tensor_2d(ws.ctx, t.type, K, M));
    }
    ws.buf = ggml_backend_alloc_ctx_tensors_from_buft(ws.ctx, t.buft);
    if (ws.buf == nullptr) {
        fail("cannot allocate " + std::to_string(n) + " copies of " + name + " " + std::to_string(M) + "x" +
                         std::to_string(K));
    }
    for (ggml_tensor * c : ws.copies) {
        ggml_backend_tensor_set(c, q.data(), 0, q.size());
    }
}

inline int ggml_cpu_threads = 1;  // what the CPU backend was last set to

struct timing {
    double median, min, max;  // seconds per MUL_MAT
};

// One MUL_MAT node per weight copy, all on the same activations; graphs over consecutive windows
// of `use` copies, run in turn, so a window's weights were last read a whole rotation (> L3) ago
// and come from DRAM. `use` is as many copies as one run needs to last min_seconds: every copy
// for a fast MUL_MAT (decode), a single one when one MUL_MAT alone takes that long, which keeps
// a large-N configuration from running every copy per repetition.
inline timing measure(ggml_backend_t cpu, const weight_set & ws, int64_t K, int64_t N, const options & o, std::mt19937 & rng) {
    const int n = (int) ws.copies.size();
    // graphs: the warm-up and timing windows of one copy, then at most one per window (<= n)
    ggml_init_params ip = {ggml_tensor_overhead() * (n + 1) + (n + 2) * ggml_graph_overhead_custom(n + 1, false), nullptr, true};
    ggml_context * ctx = ggml_init(ip);
    ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, N);
    std::vector<ggml_tensor *> products;
    for (ggml_tensor * w : ws.copies) {
        products.push_back(ggml_mul_mat(ctx, w, x));
    }
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, cpu);
    ggml_backend_buffer_clear(buf, 0);  // every output page faulted in now, not inside a timed run
    std::vector<float> xv(K * N);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float & v : xv) v = normal(rng);
    ggml_backend_tensor_set(x, xv.data(), 0, xv.size() * sizeof(float));

    auto window = [&](int first, int use) {
        ggml_cgraph * gf = ggml_new_graph_custom(ctx, use + 1, false);
        for (int i = 0; i < use; ++i) {
            ggml_build_forward_expand(gf, products[(first + i) % n]);
        }
        return gf;
    };
    auto run = [&](ggml_cgraph * gf) {
        if (ggml_backend_graph_compute(cpu, gf) != GGML_STATUS_SUCCESS) fail("graph compute failed");
    };
    // seconds since an arbitrary start: wall time, or CPU time of all threads divided by their
    // count (with --cpu-time, which stays meaningful while other programs take the cores)
    const int threads = ggml_cpu_threads;
    auto now = [&]() {
        if (!o.cpu_time) return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
        timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return ((double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec) / threads;
    };
    run(window(0, 1));  // warm-up: work buffer, thread pool, page faults
    const double t0 = now();
    run(window(1, 1));
    const double once = now() - t0;
    const int use = std::clamp((int) std::ceil(o.min_seconds / std::max(once, 1e-9)), 1, n);
    const int iters = std::max(1, (int) std::ceil(o.min_seconds / std::max(once * use, 1e-9)));
    const int windows = (n + use - 1) / use;
    std::vector<ggml_cgraph *> graphs;
    for (int i = 0; i < std::min(windows, o.reps); ++i) {
        graphs.push_back(window(2 + i * use, use));
    }
    std::vector<double> per_op;
    for (int r = 0; r < o.reps; ++r) {
        ggml_cgraph * gf = graphs[r % graphs.size()];
        const double s = now();
        for (int i = 0; i < iters; ++i) run(gf);
        per_op.push_back((now() - s) / iters / use);
    }
    std::sort(per_op.begin(), per_op.end());
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    const size_t m = per_op.size();
    const double median = m % 2 ? per_op[m / 2] : 0.5 * (per_op[m / 2 - 1] + per_op[m / 2]);
    return {median, per_op.front(), per_op.back()};
}

// Read bandwidth in GB/s with nt threads, median of reps passes over a 1 GiB buffer (far past any
// L3), each thread summing its contiguous share as 64-bit words (the compiler vectorises the sum).
inline double read_bandwidth(int nt, int reps) {
    const size_t words = (size_t) 1 << 27;  // 1 GiB
    std::vector<uint64_t> buf(words, 1);     // written, so every page is backed before timing
    std::vector<double> gbs;
    for (int r = 0; r < reps; ++r) {
        std::vector<uint64_t> sums(nt);
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int t = 0; t < nt; ++t) {
            pool.emplace_back([&, t] {
                const uint64_t * p = buf.data() + words / nt * t;
                uint64_t s = 0;
                for (size_t i = 0; i < words / nt; ++i) s += p[i];
                sums[t] = s;
            });
        }
        for (auto & th : pool) th.join();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        uint64_t total = 0;
        for (uint64_t s : sums) total += s;
        if (total != words / nt * nt) fail("buffer read back wrong");  // keeps the sums alive
        gbs.push_back((double) (words / nt * nt) * sizeof(uint64_t) / seconds / 1e9);
    }
    std::sort(gbs.begin(), gbs.end());
    return gbs[gbs.size() / 2];
}

// Random ternary weights with one fp16-exact scale for the matrix, as a BitNet b1.58 tensor has
// (absmean quantization) and the end-to-end models (synth.py) have; every ternary type holds them.
inline std::vector<float> ternary_weights(int64_t M, int64_t K, std::mt19937 & rng) {
    std::vector<float> w(M * K);
    std::uniform_int_distribution<int> trit(-1, 1);
    const float d = ggml_fp16_to_fp32(ggml_fp32_to_fp16(1.0f / std::sqrt((float) K)));
    for (int64_t i = 0; i < M * K; ++i) w[i] = (float) trit(rng) * d;
    return w;
}

// Every shape x thread count x N x type, one JSON line per measurement, then the ratio lines of
// each type against its baseline measured in the same run.
inline void run(const options & o, const type_resolver & resolve, const cpu_api & api) {
    ggml_backend_t cpu = api.init();
    std::mt19937 rng(o.seed);
    for (const auto & shape : o.shapes) {
        const int64_t M = shape.first, K = shape.second;
        const std::vector<float> w = ternary_weights(M, K, rng);
        // all types' weights first, then each configuration measures every type back to back, so
        // a change in machine load between configurations does not skew the ratios
        std::map<std::string, std::unique_ptr<weight_set>> sets;
        for (const auto & name : o.types) {
            sets[name] = std::make_unique<weight_set>();
            make_weights(*sets[name], name, resolve(name), M, K, w, o.min_bytes);
        }
        // results[type][threads][N]: per-MUL_MAT median seconds, for the ratios
        std::map<std::string, std::map<int, std::map<int64_t, timing>>> results;
        for (int nt : o.threads) {
            api.set_n_threads(cpu, nt);
            ggml_cpu_threads = nt;
            for (int64_t N : o.tokens) {
                for (const auto & name : o.types) {
                    const weight_set & ws = *sets[name];
                    const timing tm = measure(cpu, ws, K, N, o, rng);
                    results[name][nt][N] = tm;
                    const double ops = 2.0 * (double) M * (double) K * (double) N;
                    printf("{\"type\": \"%s\", \"M\": %lld, \"K\": %lld, \"N\": %lld, \"threads\": %d, \"copies\": %zu, "
                           "\"bytes_per_copy\": %zu, \"ms_median\": %.4f, \"ms_min\": %.4f, \"ms_max\": %.4f, "
                           "\"gops\": %.1f, \"gops_min\": %.1f, \"gops_max\": %.1f, \"weight_gbs\": %.1f}\n",
                           name.c_str(), (long long) M, (long long) K, (long long) N, nt, ws.copies.size(), ws.bytes,
                           tm.median * 1e3, tm.min * 1e3, tm.max * 1e3, ops / tm.median * 1e-9, ops / tm.max * 1e-9,
                           ops / tm.min * 1e-9, (double) ws.bytes / tm.median * 1e-9);
                    fflush(stdout);
                }
            }
        }
        for (const auto & name : o.types) {
            const std::string base = resolve(name).baseline;
            if (base.empty() || results.find(base) == results.end()) continue;
            for (int nt : o.threads) {
                for (int64_t N : o.tokens) {
                    const timing & mine = results[name][nt][N];
                    const timing & other = results[base][nt][N];
                    const double ops = 2.0 * (double) M * (double) K * (double) N;
                    printf("{\"ratio\": \"%s/%s\", \"M\": %lld, \"K\": %lld, \"N\": %lld, \"threads\": %d, "
                           "\"gops\": %.1f, \"baseline_gops\": %.1f, \"speedup\": %.2f}\n",
                           name.c_str(), base.c_str(), (long long) M, (long long) K, (long long) N, nt,
                           ops / mine.median * 1e-9, ops / other.median * 1e-9, other.median / mine.median);
                }
            }
        }
        fflush(stdout);
    }
    ggml_backend_free(cpu);
}

// --bandwidth: one JSON line per thread count
inline void print_bandwidth(const options & o) {
    for (int nt : o.threads) {
        printf("{\"read_gbs\": %.2f, \"threads\": %d}\n", read_bandwidth(nt, o.reps), nt);
    }
}

}  // namespace gemm_timing
