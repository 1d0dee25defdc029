// FLASH_ATTN_EXT on an F16 KV cache (attention.h): which ops veclut takes and how the threads
// share one. The kernels: attention_rows.cpp (a few query rows), attention_tiled.cpp (many).

#include "attention.h"
#include "attention_op.h"

#include "ggml-cpu.h"
#include "ggml-cpu-impl.h"
#include "veclut.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace veclut {

namespace {

constexpr int64_t MAX_DIM = 576;  // head sizes of current models (DeepSeek's 576 included)

std::atomic<bool> & enabled() {
    static std::atomic<bool> on{[] {
        const char * v = std::getenv("VECLUT_ATTENTION");
        return v == nullptr || std::strcmp(v, "0") != 0;
    }()};
    return on;
}

std::atomic<long> runs{0};

bool claims(const ggml_tensor * op) {
    const ggml_tensor * q = op->src[0], * k = op->src[1], * v = op->src[2], * mask = op->src[3], * sinks = op->src[4];
    const int32_t precision = op->op_params[3];
    return (precision == GGML_PREC_DEFAULT || precision == GGML_PREC_F32) &&
           q->type == GGML_TYPE_F32 && k->type == GGML_TYPE_F16 && v->type == GGML_TYPE_F16 &&
           (mask == nullptr || mask->type == GGML_TYPE_F16) && (sinks == nullptr || sinks->type == GGML_TYPE_F32) &&
           q->nb[0] == sizeof(float) && k->nb[0] == sizeof(ggml_fp16_t) && v->nb[0] == sizeof(ggml_fp16_t) &&
           op->type == GGML_TYPE_F32 && op->nb[0] == sizeof(float) &&
           k->ne[0] <= MAX_DIM && v->ne[0] <= MAX_DIM && q->ne[0] == k->ne[0] &&
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
    const int64_t seqs = a.q->ne[3];
    if (a.N >= TILED_MIN_ROWS && (a.mask == nullptr || a.mask->ne[2] == 1)) {
        // tiles of query rows, every head; taken dynamically, as causal masks give later rows more
        // positions
        const int64_t tiles = (a.N + TILE_ROWS - 1) / TILE_ROWS, units = seqs * tiles;
        if (ith == 0) {
            ggml_threadpool_chunk_set(params->threadpool, nth);
        }
        ggml_barrier(params->threadpool);
        for (int64_t u = ith; u < units; u = ggml_threadpool_chunk_add(params->threadpool, 1)) {
            const int64_t r0 = u % tiles * TILE_ROWS;
            attend_tile(a, u / tiles, r0, std::min(a.N, r0 + TILE_ROWS));
        }
    } else {
        // A unit is one query row with a range of its heads: whole rows while there are enough of
        // them for the threads, else each row's heads split into up to nth ranges.
        const int64_t rows = seqs * a.N;
        const int64_t ranges = std::min<int64_t>(a.heads, (nth + rows - 1) / rows);
        const int64_t units = rows * ranges;
        if (units < nth) {  // fewer (row, head) pairs than threads: upstream splits positions instead
            return false;
        }
        for (int64_t u = units * ith / nth; u < units * (ith + 1) / nth; ++u) {
            const int64_t row = u / ranges, range = u % ranges;
            attend_row(a, row / a.N, row % a.N, a.heads * range / ranges, a.heads * (range + 1) / ranges);
        }
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
