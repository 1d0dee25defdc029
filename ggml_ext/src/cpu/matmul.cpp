// Orchestration of one MUL_MAT on repacked weights (all threads of the graph call it together):
//   1. every thread quantizes a share of the tokens to Q8_K (upstream's own activation format);
//   2a. small N: rows in dynamically taken chunks, dot products against all tokens;
//   2b. otherwise, per token tile and per K-chunk: tables built, then the rows look them up,
//       streaming the weights once per token tile. By default (tiles::private_tables) every
//       thread builds its own copy and keeps one range of rows, without barriers; shared tables
//       are built once, rows taken in dynamic chunks, barriers between the steps.
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

void * align_up(void * p) { return (void *) align64((size_t) p); }

struct work_layout {
    tiles   t;
    int64_t tokens;
    size_t  prep_stride;                         // bytes of prepared activations per token (dot path)
    bool    lut_steps;                               // vector LUT over more than one K-chunk
    int64_t dot_chunk, acc_rows;
    size_t  table_bytes, scale_bytes;                // of one copy of the tables (see tiles::private_tables)                     // rows per chunk of the dot path; rows of acc
    size_t  ptrs, prep, tables, scales, acc, racc, total;  // byte offsets into the work buffer
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
    p.prep_stride = (p.tokens < p.t.lut_min_n && k.dot_prep_bytes) ? align64(k.dot_prep_bytes(kind, blocks)) : 0;
    p.prep   = p.ptrs + align64(p.tokens * sizeof(block_q8_K *));
    p.tables = p.prep + p.tokens * p.prep_stride;
    p.table_bytes = align64(p.t.kb * info_of(kind).table_entries * p.t.tile_n * sizeof(int16_t));
    p.scale_bytes = align64(p.t.kb * p.t.tile_n * sizeof(float));
    const int copies = p.t.private_tables ? nth : 1;
    p.scales = p.tables + copies * p.table_bytes;
    p.acc    = p.scales + copies * p.scale_bytes;
    // vector LUT over several K-chunks: float sums of every row of the token tile stay in the
    // work buffer between the chunks (rows x tile_n), written to dst once per token tile
    p.lut_steps = p.tokens >= p.t.lut_min_n && blocks > p.t.kb;
    // dot path: longer runs of contiguous rows per chunk keep the prefetch streams going (every
    // chunk boundary restarts them), with at least 4 chunks per thread for the dynamic balance;
    // VECLUT_ROW_CHUNK, when set, fixes both paths' chunks
    p.dot_chunk = p.t.row_chunk_set ? p.t.row_chunk
                                    : std::clamp<int64_t>(src0->ne[1] / (4 * nth), p.t.row_chunk, 256);
    p.acc_rows = std::max(p.t.row_chunk, p.dot_chunk);
    p.racc   = p.acc + nth * align64(p.acc_rows * p.t.tile_n * sizeof(float));
    p.total  = p.racc + (p.lut_steps ? align64(src0->ne[1] * p.t.tile_n * sizeof(float)) : 0) + 64;  // + 64: see align_up
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

// acc holds rows x tile_n results of tokens [t0, t0+nt); write them into dst
void store(const ggml_tensor * dst, const float * acc, int64_t row0, int64_t nrows, int64_t t0, int nt, int tile_n) {
    for (int n = 0; n < nt; ++n) {
        float * out = dst_row(dst, t0 + n) + row0;
        for (int64_t r = 0; r < nrows; ++r) {
            out[r] = acc[r * tile_n + n];
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
    // ggml's work buffer comes from new[] (16-byte aligned): align it, or every 64-byte table
    // entry a kernel loads would straddle two cache lines
    char * wdata = (char *) align_up(params->wdata);
    auto * q8     = (block_q8_K *) wdata;
    auto * acts   = (const block_q8_K **) (wdata + p.ptrs);
    auto * prep   = (uint8_t *) (wdata + p.prep);
    const int copy = p.t.private_tables ? ith : 0;
    auto * tables = (int16_t *) (wdata + p.tables + copy * p.table_bytes);
    auto * ascale = (float *) (wdata + p.scales + copy * p.scale_bytes);
    auto * acc    = (float *) (wdata + p.acc + ith * align64(p.acc_rows * p.t.tile_n * sizeof(float)));

    // 1. activations to Q8_K, exactly as upstream's vec_dot path quantizes them
    const ggml_from_float_t to_q8 = ggml_get_type_traits_cpu(GGML_TYPE_Q8_K)->from_float;
    for (int64_t n = ith; n < N; n += nth) {
        to_q8(src_row(src1, n), q8 + n * blocks, K);
        acts[n] = q8 + n * blocks;
        if (p.prep_stride) {
            k.dot_prepare(w.kind, acts[n], blocks, prep + n * p.prep_stride);
        }
    }
    if (ith == 0) {
        ggml_threadpool_chunk_set(params->threadpool, nth);
    }
    ggml_barrier(params->threadpool);

    const int tile = p.t.tile_n;
    const bool dot_path = N < p.t.lut_min_n;
    const int64_t rc = dot_path ? p.dot_chunk : p.t.row_chunk;
    const int64_t nchunks = (rows + rc - 1) / rc;

    // 2a. dot products for small N
    if (dot_path) {
        for (int64_t c = ith; c < nchunks; c = ggml_threadpool_chunk_add(params->threadpool, 1)) {
            const int64_t row0 = c * rc, nr = std::min(rc, rows - row0);
            for (int64_t t0 = 0; t0 < N; t0 += tile) {
                const int nt = (int) std::min<int64_t>(tile, N - t0);
                k.dot(w, row0, nr, acts + t0, prep + t0 * p.prep_stride, p.prep_stride, nt, acc, tile);
                store(op, acc, row0, nr, t0, nt, tile);
            }
        }
        return true;
    }

    // 2b. vector LUT
    const int64_t entries = info_of(w.kind).table_entries;
    // one K-chunk step on rows [row0, row0+nr): row sums start at zero on the first chunk and go to
    // dst after the last (they live in the work buffer in between when K spans several chunks)
    auto lut_rows = [&](int64_t row0, int64_t nr, int64_t t0, int nt, int64_t b0, int64_t kb,
                        const int16_t * step_tables, const float * step_scales) {
        float * sums = p.lut_steps ? (float *) (wdata + p.racc) + row0 * tile : acc;
        if (b0 == 0) {
            std::memset(sums, 0, nr * tile * sizeof(float));
        }
        k.lut_accumulate(w, row0, nr, b0, kb, step_tables, step_scales, nt, sums);
        if (b0 + kb >= blocks) {
            store(op, sums, row0, nr, t0, nt, tile);
        }
    };
    if (p.t.private_tables) {
        // Every thread builds its own tables, so nothing is shared between the steps but the row
        // sums: each thread keeps one contiguous range of rows for the whole MUL_MAT and needs no
        // barrier at all (hundreds per MUL_MAT otherwise, each a lost time slice when the threads
        // outnumber the free cores).
        const int64_t per = ((rows + nth - 1) / nth + rc - 1) / rc * rc;
        const int64_t r_begin = std::min(rows, ith * per), r_end = std::min(rows, r_begin + per);
        for (int64_t t0 = 0; t0 < N && r_begin < r_end; t0 += tile) {
            const int nt = (int) std::min<int64_t>(tile, N - t0);
            for (int64_t b0 = 0; b0 < blocks; b0 += p.t.kb) {
                const int64_t kb = std::min(p.t.kb, blocks - b0);
                for (int64_t i = 0; i < kb; ++i) {
                    k.build_tables(w.kind, acts + t0, b0 + i, nt, tables + i * entries * tile, ascale + i * tile);
                }
                for (int64_t row0 = r_begin; row0 < r_end; row0 += rc) {
                    lut_rows(row0, std::min(rc, r_end - row0), t0, nt, b0, kb, tables, ascale);
                }
            }
        }
        return true;
    }
    for (int64_t t0 = 0; t0 < N; t0 += tile) {
        const int nt = (int) std::min<int64_t>(tile, N - t0);
        for (int64_t b0 = 0; b0 < blocks; b0 += p.t.kb) {
            const int64_t kb = std::min(p.t.kb, blocks - b0);
            // shared tables: the threads build the blocks of one copy between them
            for (int64_t i = ith; i < kb; i += nth) {
                k.build_tables(w.kind, acts + t0, b0 + i, nt, tables + i * entries * tile, ascale + i * tile);
            }
            ggml_barrier(params->threadpool);  // tables complete; the chunk counter was reset
            for (int64_t c = ith; c < nchunks; c = ggml_threadpool_chunk_add(params->threadpool, 1)) {
                lut_rows(c * rc, std::min(rc, rows - c * rc), t0, nt, b0, kb, tables, ascale);
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
