// Orchestration of one MUL_MAT or MUL_MAT_ID on repacked weights (all threads of the graph call
// it together). jobs.h routes the op into jobs (one weight matrix times the activation rows
// routed to it); then:
//   1. every thread quantizes a share of src1's rows to Q8_K (upstream's own activation format;
//      Q8_0 for the 2-bit and 1-bit layouts, as upstream Q2_0 / Q1_0) while thread 0 routes; for MUL_MAT_ID the rows of dot-path jobs are then prepared;
//   2. vector-LUT jobs (n >= lut_min_n), per token tile and per K-chunk: tables built, then the
//      rows look them up, streaming the weights once per token tile. By default
//      (tiles::private_tables) every thread builds its own copy and keeps one range of rows of
//      every job, without barriers; shared tables (MUL_MAT only) are built once, rows taken in
//      dynamic chunks, barriers between the steps;
//   3. dot-path jobs (small n): row chunks of all of them, taken dynamically from one counter.
// All scratch lives in ggml's work buffer (sized by work_size): nothing is allocated per call.

#include "matmul.h"

#include "jobs.h"
#include "kernels.h"
#include "kernels_q2.h"
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
    routing_size rs;
    int64_t rows;                                    // M: rows of one weight matrix
    size_t  prep_stride;                             // bytes of prepared activations per position (dot path)
    bool    lut_steps;                               // vector LUT over more than one K-chunk
    int64_t dot_chunk, acc_rows;                     // rows per chunk of the dot path; rows of acc
    size_t  table_bytes, scale_bytes;                // of one copy of the tables (see tiles::private_tables)
    ggml_type act_type;                              // activations: Q8_K, or Q8_0 for the 2-bit and 1-bit layouts
    size_t  act_row;                                 // bytes of one quantized activation row
    int     act_floats;                              // floats per block and token next to the tables
    size_t  acts, outs, prep, route, jobs, tables, scales, acc, racc, total;  // byte offsets into the work buffer
};

bool is_matmul(const ggml_tensor * op) { return op->op == GGML_OP_MUL_MAT || op->op == GGML_OP_MUL_MAT_ID; }

work_layout plan(const kernel_set & k, const ggml_tensor * op, int nth) {
    const ggml_tensor * src0 = op->src[0];
    layout kind;
    layout_for_type(src0->type, &kind);
    const bool q2 = takes_q8_0(kind);  // the 2-bit kernel interface (kernels_q2.h)
    const int64_t blocks = src0->ne[0] / info_of(kind).block_k;
    const bool moe = op->op == GGML_OP_MUL_MAT_ID;
    work_layout p;
    const q2_kernel_set & k2 = q2_kernels_for(k);
    const int lut_min_n2 = kind == layout::q1 ? k2.lut_min_n1 : k2.lut_min_n;
    // tables keep to an eighth of L2 (choose_tiles; for the 2-bit interface's see docs/q1_0.md)
    p.t    = q2 ? choose_tiles(k2.tile_n, lut_min_n2, blocks, table_entries(k, kind))
                : choose_tiles(k, kind, blocks);
    p.act_type   = q2 ? GGML_TYPE_Q8_0 : GGML_TYPE_Q8_K;
    p.act_row    = ggml_row_size(p.act_type, src0->ne[0]);
    p.act_floats = q2 ? Q2_ACT_FLOATS : 1;
    p.rs   = routing_size_of(op);
    p.rows = src0->ne[1];
    if (moe) {
        p.t.private_tables = true;  // shared tables would need barriers per expert
    }
    // prepared activations: only positions of dot-path jobs read them; an expert of a MoE may
    // get few tokens whatever the batch, a plain MUL_MAT only when the batch is small
    const bool some_dot = moe || p.rs.positions < p.t.lut_min_n;
    p.prep_stride = (!q2 && some_dot && k.dot_prep_bytes) ? align64(k.dot_prep_bytes(kind, blocks)) : 0;
    p.acts   = align64(p.rs.src_rows * p.act_row);
    p.outs   = p.acts + align64(p.rs.positions * sizeof(block_q8_K *));
    p.prep   = p.outs + align64(p.rs.positions * sizeof(float *));
    p.route  = p.prep + p.rs.positions * p.prep_stride;  // src_index[positions], count[matrices + 1], njobs
    p.jobs   = p.route + align64((p.rs.positions + p.rs.matrices + 2) * sizeof(int64_t));
    p.tables = p.jobs + align64(p.rs.matrices * sizeof(job));
    p.table_bytes = align64(p.t.kb * table_entries(k, kind) * p.t.tile_n * sizeof(int16_t));
    p.scale_bytes = align64(p.t.kb * p.t.tile_n * p.act_floats * sizeof(float));
    const int copies = p.t.private_tables ? nth : 1;
    p.scales = p.tables + copies * p.table_bytes;
    p.acc    = p.scales + copies * p.scale_bytes;
    // vector LUT over several K-chunks: float sums of every row of the token tile stay in the
    // work buffer between the chunks (rows x tile_n), written to dst once per token tile
    p.lut_steps = (moe || p.rs.positions >= p.t.lut_min_n) && blocks > p.t.kb;
    // dot path: longer runs of contiguous rows per chunk keep the prefetch streams going (every
    // chunk boundary restarts them), with at least 4 chunks per thread for the dynamic balance;
    // VECLUT_ROW_CHUNK, when set, fixes both paths' chunks
    p.dot_chunk = p.t.row_chunk_set ? p.t.row_chunk
                                    : std::clamp<int64_t>(p.rows / (4 * nth), 16, 256);
    p.acc_rows = std::max(p.t.row_chunk, p.dot_chunk);
    p.racc   = p.acc + nth * align64(p.acc_rows * p.t.tile_n * sizeof(float));
    p.total  = p.racc + (p.lut_steps ? align64(p.rows * p.t.tile_n * sizeof(float)) : 0) + 64;  // + 64: see align_up
    return p;
}

// acc holds rows x tile_n results of nt positions; write them into their output rows
void store(float * const * outs, const float * acc, int64_t row0, int64_t nrows, int nt, int tile_n) {
    for (int n = 0; n < nt; ++n) {
        float * out = outs[n] + row0;
        for (int64_t r = 0; r < nrows; ++r) {
            out[r] = acc[r * tile_n + n];
        }
    }
}

// What one thread needs to run jobs: views into the work buffer and the op's plan.
struct runner {
    const kernel_set & k;
    const q2_kernel_set & k2;  // used instead of k for the 2-bit and 1-bit layouts
    const work_layout & p;
    const packed_weights & w;
    const block_q8_K * const * acts;
    const block_q8_0 * const * acts0;  // the same slots, for the 2-bit layout's Q8_0 activations
    float * const * outs;
    const uint8_t * prep;
    int16_t * tables;
    float * ascale;
    float * acc;
    float * racc;

    // rows [row0, row0+nr) of job j (relative to its matrix), all its positions, dot products
    void dot_rows(const job & j, int64_t row0, int64_t nr) const {
        const int tile = p.t.tile_n;
        for (int64_t t0 = 0; t0 < j.n; t0 += tile) {
            const int nt = (int) std::min<int64_t>(tile, j.n - t0);
            const int64_t at = j.first + t0;
            if (w.kind == layout::q2) {
                k2.dot(w, j.wrow0 + row0, nr, acts0 + at, nt, acc, tile);
            } else if (w.kind == layout::q1) {
                k2.dot1(w, j.wrow0 + row0, nr, acts0 + at, nt, acc, tile);
            } else {
                k.dot(w, j.wrow0 + row0, nr, acts + at, prep + at * p.prep_stride, p.prep_stride, nt, acc, tile);
            }
            store(outs + at, acc, row0, nr, nt, tile);
        }
    }

    // one K-chunk step of the vector LUT on rows [row0, row0+nr) of job j: row sums start at zero
    // on the first chunk and go to the outputs after the last (they live in racc in between when
    // K spans several chunks)
    void lut_rows(const job & j, int64_t row0, int64_t nr, int64_t t0, int nt, int64_t b0, int64_t kb,
                  const int16_t * step_tables, const float * step_scales) const {
        const int tile = p.t.tile_n;
        float * sums = p.lut_steps ? racc + row0 * tile : acc;
        if (b0 == 0) {
            std::memset(sums, 0, nr * tile * sizeof(float));
        }
        if (w.kind == layout::q2) {
            k2.lut_accumulate(w, j.wrow0 + row0, nr, b0, kb, step_tables, step_scales, nt, sums);
        } else if (w.kind == layout::q1) {
            k2.lut_accumulate1(w, j.wrow0 + row0, nr, b0, kb, step_tables, step_scales, nt, sums);
        } else {
            k.lut_accumulate(w, j.wrow0 + row0, nr, b0, kb, step_tables, step_scales, nt, sums);
        }
        if (b0 + kb >= w.blocks) {
            store(outs + j.first + t0, sums, row0, nr, nt, tile);
        }
    }

    void build(const job & j, int64_t t0, int nt, int64_t b0, int64_t i) const {
        const int64_t entries = table_entries(k, w.kind);
        int16_t * t = tables + i * entries * p.t.tile_n;
        float * s = ascale + i * p.t.tile_n * p.act_floats;
        if (takes_q8_0(w.kind)) {
            (w.kind == layout::q1 ? k2.build_tables1 : k2.build_tables)(acts0 + j.first + t0, b0 + i, nt, t, s);
        } else {
            k.build_tables(w.kind, acts + j.first + t0, b0 + i, nt, t, s);
        }
    }

    // Private tables: this thread builds its own and keeps rows [r_begin, r_end) of the job, so
    // nothing is shared between the steps and no barrier is needed (hundreds per MUL_MAT
    // otherwise, each a lost time slice when the threads outnumber the free cores).
    void lut_private(const job & j, int64_t r_begin, int64_t r_end) const {
        const int64_t rc = p.t.row_chunk;
        for (int64_t t0 = 0; t0 < j.n && r_begin < r_end; t0 += p.t.tile_n) {
            const int nt = (int) std::min<int64_t>(p.t.tile_n, j.n - t0);
            for (int64_t b0 = 0; b0 < w.blocks; b0 += p.t.kb) {
                const int64_t kb = std::min(p.t.kb, w.blocks - b0);
                for (int64_t i = 0; i < kb; ++i) {
                    build(j, t0, nt, b0, i);
                }
                for (int64_t row0 = r_begin; row0 < r_end; row0 += rc) {
                    lut_rows(j, row0, std::min(rc, r_end - row0), t0, nt, b0, kb, tables, ascale);
                }
            }
        }
    }

    // Shared tables (MUL_MAT only): the threads build the blocks of one copy between them.
    void lut_shared(const job & j, ggml_compute_params * params) const {
        const int ith = params->ith, nth = params->nth;
        const int64_t rc = p.t.row_chunk, nchunks = (p.rows + rc - 1) / rc;
        for (int64_t t0 = 0; t0 < j.n; t0 += p.t.tile_n) {
            const int nt = (int) std::min<int64_t>(p.t.tile_n, j.n - t0);
            for (int64_t b0 = 0; b0 < w.blocks; b0 += p.t.kb) {
                const int64_t kb = std::min(p.t.kb, w.blocks - b0);
                for (int64_t i = ith; i < kb; i += nth) {
                    build(j, t0, nt, b0, i);
                }
                ggml_barrier(params->threadpool);  // tables complete; the chunk counter was reset
                for (int64_t c = ith; c < nchunks; c = ggml_threadpool_chunk_add(params->threadpool, 1)) {
                    lut_rows(j, c * rc, std::min(rc, p.rows - c * rc), t0, nt, b0, kb, tables, ascale);
                }
                ggml_barrier(params->threadpool);
                if (ith == 0) {  // safe: every thread is past its last chunk_add of this step
                    ggml_threadpool_chunk_set(params->threadpool, nth);
                }
            }
        }
    }
};

}  // namespace

bool matmul_traits::work_size(int n_threads, const ggml_tensor * op, size_t & size) {
    if (!is_matmul(op)) {
        return false;
    }
    size = plan(active_kernels(), op, n_threads).total;
    return true;
}

bool matmul_traits::compute_forward(ggml_compute_params * params, ggml_tensor * op) {
    if (!is_matmul(op)) {
        return false;
    }
    const kernel_set & k = active_kernels();
    const ggml_tensor * src0 = op->src[0];
    const ggml_tensor * src1 = op->src[1];
    const int ith = params->ith, nth = params->nth;
    const work_layout p = plan(k, op, nth);
    GGML_ASSERT(params->wsize >= p.total);

    const packed_weights w = packed_view(src0);
    const int64_t blocks = w.blocks, rows = p.rows;
    // ggml's work buffer comes from new[] (16-byte aligned): align it, or every 64-byte table
    // entry a kernel loads would straddle two cache lines
    char * wdata = (char *) align_up(params->wdata);
    auto * q8        = (block_q8_K *) wdata;  // ternary layouts (act_row = blocks Q8_K blocks)
    auto * acts      = (const block_q8_K **) (wdata + p.acts);
    auto * acts0     = (const block_q8_0 **) (wdata + p.acts);  // the 2-bit layout's view of the slots
    auto * outs      = (float **) (wdata + p.outs);
    auto * prep      = (uint8_t *) (wdata + p.prep);
    auto * src_index = (int64_t *) (wdata + p.route);
    auto * jobs      = (job *) (wdata + p.jobs);
    const int copy = p.t.private_tables ? ith : 0;
    const runner run{k, q2_kernels_for(k), p, w, acts, acts0, outs, prep,
                     (int16_t *) (wdata + p.tables + copy * p.table_bytes),
                     (float *) (wdata + p.scales + copy * p.scale_bytes),
                     (float *) (wdata + p.acc + ith * align64(p.acc_rows * p.t.tile_n * sizeof(float))),
                     (float *) (wdata + p.racc)};

    // 1. activations to Q8_K, exactly as upstream's vec_dot path quantizes them; thread 0 routes.
    // MUL_MAT's positions are src1's rows, so each thread prepares the rows it quantized; a
    // MUL_MAT_ID's are known only after the routing (one more barrier).
    const bool moe = op->op == GGML_OP_MUL_MAT_ID;
    const ggml_from_float_t to_q8 = p.act_type == GGML_TYPE_Q8_K ? q8_K_quantizer(k) : ggml_get_type_traits_cpu(p.act_type)->from_float;
    for (int64_t n = ith; n < p.rs.src_rows; n += nth) {
        to_q8(flat_row(src1, n), wdata + n * p.act_row, src0->ne[0]);
        if (p.prep_stride && !moe) {
            k.dot_prepare(w.kind, q8 + n * blocks, blocks, prep + n * p.prep_stride);
        }
    }
    int64_t * njobs_slot = src_index + p.rs.positions + p.rs.matrices + 1;
    if (ith == 0) {
        const int64_t njobs = route(op, src_index, outs, jobs, src_index + p.rs.positions);
        const int64_t rc = p.dot_chunk;
        int64_t chunks = 0;
        for (int64_t i = 0; i < njobs; ++i) {
            jobs[i].chunk0 = chunks;
            chunks += jobs[i].n < p.t.lut_min_n ? (rows + rc - 1) / rc : 0;
        }
        for (int64_t q = 0; q < p.rs.positions; ++q) {
            if (takes_q8_0(w.kind)) {
                acts0[q] = (const block_q8_0 *) (wdata + src_index[q] * p.act_row);
            } else {
                acts[q] = q8 + src_index[q] * blocks;
            }
        }
        *njobs_slot = njobs;
        ggml_threadpool_chunk_set(params->threadpool, nth);
    }
    ggml_barrier(params->threadpool);
    const int64_t njobs = *njobs_slot;
    if (p.prep_stride && moe) {  // prepared activations of the dot-path jobs' positions
        for (int64_t i = 0; i < njobs; ++i) {
            if (jobs[i].n < p.t.lut_min_n) {
                for (int64_t q = jobs[i].first + ith; q < jobs[i].first + jobs[i].n; q += nth) {
                    k.dot_prepare(w.kind, acts[q], blocks, prep + q * p.prep_stride);
                }
            }
        }
        ggml_barrier(params->threadpool);
    }

    // 2. vector-LUT jobs
    for (int64_t i = 0; i < njobs; ++i) {
        if (jobs[i].n < p.t.lut_min_n) {
            continue;
        }
        if (!p.t.private_tables) {
            run.lut_shared(jobs[i], params);
            continue;
        }
        const int64_t per = ((rows + nth - 1) / nth + 15) / 16 * 16;  // equal shares, whatever the kernels' chunk
        const int64_t r_begin = std::min(rows, ith * per), r_end = std::min(rows, r_begin + per);
        run.lut_private(jobs[i], r_begin, r_end);
    }

    // 3. dot-path jobs: global row chunks over all of them, one dynamic counter
    const int64_t rc = p.dot_chunk, per_job = (rows + rc - 1) / rc;
    int64_t total = 0;
    for (int64_t i = 0; i < njobs; ++i) {
        total += jobs[i].n < p.t.lut_min_n ? per_job : 0;
    }
    int64_t cursor = 0;  // dot jobs in chunk order: the counter only grows, so the search only advances
    for (int64_t c = ith; c < total; c = ggml_threadpool_chunk_add(params->threadpool, 1)) {
        while (jobs[cursor].n >= p.t.lut_min_n || c >= jobs[cursor].chunk0 + per_job) {
            ++cursor;
        }
        const int64_t row0 = (c - jobs[cursor].chunk0) * rc;
        run.dot_rows(jobs[cursor], row0, std::min(rc, rows - row0));
    }
    return true;
}

matmul_traits * the_matmul_traits() {
    static matmul_traits traits;
    return &traits;
}

}  // namespace veclut
