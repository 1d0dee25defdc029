// Orchestration of one MUL_MAT on repacked weights (all threads of the graph call it together):
//   1. every thread quantizes a share of the tokens to Q8_K (upstream's own activation format);
//   2a. small N: rows in dynamically taken chunks, dot products against all tokens;
//   2b. otherwise, per token tile and per K-chunk: tables built once (blocks split across the
//       threads) and shared, then rows in dynamically taken chunks look them up, streaming the
//       weights once per token tile. Barriers separate building from use.
// All scratch lives in ggml's work buffer (sized by work_size): nothing is allocated per call.

#include "matmul.h"

#include "kernels.h"
#include "packed.h"
#include "tuning.h"

#include "ggml-cpu-impl.h"
#include "ggml-cpu.h"
#include "ggml-impl.h"

#include <algorithm>
#include <cstring>

namespace veclut {

namespace {

size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

struct work_layout {
    tiles   t;
    int64_t tokens;
    size_t  ptrs, tables, scales, acc, total;  // byte offsets into the work buffer
};

work_layout plan(const kernel_set & k, const ggml_tensor * op, int nth) {
    const ggml_tensor * src0 = op->src[0];
    const ggml_tensor * src1 = op->src[1];
    layout kind;
    layout_for_type(src0->type, &kind);
    const int64_t blocks = src0->ne[0] / QK_K;
    work_layout p;
    p.t      = choose_tiles(k, kind, blocks);
    p.tokens = src1->ne[1] * src1->ne[2] * src1->ne[3];
    p.ptrs   = align64(p.tokens * blocks * sizeof(block_q8_K));
    p.tables = p.ptrs + align64(p.tokens * sizeof(block_q8_K *));
    p.scales = p.tables + align64(p.t.kb * info_of(kind).table_entries * p.t.tile_n * sizeof(int16_t));
    p.acc    = p.scales + align64(p.t.kb * p.t.tile_n * sizeof(float));
    p.total  = p.acc + nth * align64(p.t.row_chunk * p.t.tile_n * sizeof(float));
    return p;
}

// dst row of flat token index n (src1 may be 3-D / 4-D: tokens are its rows in order)
float * dst_row(const ggml_tensor * dst, int64_t n) {
    const int64_t i1 = n % dst->ne[1], i2 = (n / dst->ne[1]) % dst->ne[2], i3 = n / (dst->ne[1] * dst->ne[2]);
    return (float *) ((char *) dst->data + i1 * dst->nb[1] + i2 * dst->nb[2] + i3 * dst->nb[3]);
}

const float * src_row(const ggml_tensor * src1, int64_t n) {
    const int64_t i1 = n % src1->ne[1], i2 = (n / src1->ne[1]) % src1->ne[2], i3 = n / (src1->ne[1] * src1->ne[2]);
    return (const float *) ((const char *) src1->data + i1 * src1->nb[1] + i2 * src1->nb[2] + i3 * src1->nb[3]);
}

// acc holds rows x tile_n results of tokens [t0, t0+nt); write or add them into dst
void store(const ggml_tensor * dst, const float * acc, int64_t row0, int64_t nrows, int64_t t0, int nt, int tile_n, bool add) {
    for (int n = 0; n < nt; ++n) {
        float * out = dst_row(dst, t0 + n) + row0;
        for (int64_t r = 0; r < nrows; ++r) {
            out[r] = add ? out[r] + acc[r * tile_n + n] : acc[r * tile_n + n];
        }
    }
}

}  // namespace

bool matmul_traits::work_size(int n_threads, const ggml_tensor * op, size_t & size) {
    if (op->op != GGML_OP_MUL_MAT) {
        return false;
    }
    size = plan(active_kernels(), op, n_threads).total;
    return true;
}

bool matmul_traits::compute_forward(ggml_compute_params * params, ggml_tensor * op) {
    if (op->op != GGML_OP_MUL_MAT) {
        return false;
    }
    const kernel_set & k = active_kernels();
    const ggml_tensor * src0 = op->src[0];
    const ggml_tensor * src1 = op->src[1];
    const int ith = params->ith, nth = params->nth;
    const work_layout p = plan(k, op, nth);
    GGML_ASSERT(params->wsize >= p.total);

    const packed_weights w = packed_view(src0);
    const int64_t K = src0->ne[0], rows = src0->ne[1], blocks = w.blocks, N = p.tokens;
    char * wdata = (char *) params->wdata;
    auto * q8     = (block_q8_K *) wdata;
    auto * acts   = (const block_q8_K **) (wdata + p.ptrs);
    auto * tables = (int16_t *) (wdata + p.tables);
    auto * ascale = (float *) (wdata + p.scales);
    auto * acc    = (float *) (wdata + p.acc + ith * align64(p.t.row_chunk * p.t.tile_n * sizeof(float)));

    // 1. activations to Q8_K, exactly as upstream's vec_dot path quantizes them
    const ggml_from_float_t to_q8 = ggml_get_type_traits_cpu(GGML_TYPE_Q8_K)->from_float;
    for (int64_t n = ith; n < N; n += nth) {
        to_q8(src_row(src1, n), q8 + n * blocks, K);
        acts[n] = q8 + n * blocks;
    }
    if (ith == 0) {
        ggml_threadpool_chunk_set(params->threadpool, nth);
    }
    ggml_barrier(params->threadpool);

    const int tile = p.t.tile_n;
    const int64_t rc = p.t.row_chunk;
    const int64_t nchunks = (rows + rc - 1) / rc;

    // 2a. dot products for small N
    if (N < p.t.lut_min_n) {
        for (int64_t c = ith; c < nchunks; c = ggml_threadpool_chunk_add(params->threadpool, 1)) {
            const int64_t row0 = c * rc, nr = std::min(rc, rows - row0);
            for (int64_t t0 = 0; t0 < N; t0 += tile) {
                const int nt = (int) std::min<int64_t>(tile, N - t0);
                k.dot(w, row0, nr, acts + t0, nt, acc, tile);
                store(op, acc, row0, nr, t0, nt, tile, false);
            }
        }
        return true;
    }

    // 2b. vector LUT
    const int64_t entries = info_of(w.kind).table_entries;
    for (int64_t t0 = 0; t0 < N; t0 += tile) {
        const int nt = (int) std::min<int64_t>(tile, N - t0);
        for (int64_t b0 = 0; b0 < blocks; b0 += p.t.kb) {
            const int64_t kb = std::min(p.t.kb, blocks - b0);
            for (int64_t i = ith; i < kb; i += nth) {
                k.build_tables(w.kind, acts + t0, b0 + i, nt, tables + i * entries * tile, ascale + i * tile);
            }
            ggml_barrier(params->threadpool);
            for (int64_t c = ith; c < nchunks; c = ggml_threadpool_chunk_add(params->threadpool, 1)) {
                const int64_t row0 = c * rc, nr = std::min(rc, rows - row0);
                std::memset(acc, 0, nr * tile * sizeof(float));
                k.lut_accumulate(w, row0, nr, b0, kb, tables, ascale, nt, acc);
                store(op, acc, row0, nr, t0, nt, tile, b0 > 0);
            }
            ggml_barrier(params->threadpool);
            if (ith == 0) {  // safe: every thread is past its last chunk_add of this step
                ggml_threadpool_chunk_set(params->threadpool, nth);
            }
        }
    }
    return true;
}

matmul_traits * the_matmul_traits() {
    static matmul_traits traits;
    return &traits;
}

}  // namespace veclut
