// Run-time tile sizes: from the kernel set and the cache sizes, overridable by environment
// variables for experiments (VECLUT_LUT_MIN_N, VECLUT_TILE_KB, VECLUT_ROW_CHUNK).
#pragma once

#include "kernels.h"

namespace veclut {

struct tiles {
    int     tile_n;     // tokens per table tile (fixed by the kernel set)
    int     lut_min_n;  // tokens from which the vector-LUT path is used
    int64_t kb;         // 256-blocks of K whose tables are built together
    int64_t row_chunk;  // rows per dynamically scheduled chunk (vector LUT; the dot path's may be longer)
    bool    row_chunk_set;  // VECLUT_ROW_CHUNK given: use row_chunk for both paths
    // Every thread builds its own copy of a step's tables (VECLUT_SHARED_TABLES=1: one copy, its
    // blocks built by all threads). Measured on Zen 4 (private L2 per core), 2 threads, N=256:
    // shared 412 / 315 GOPS (I2_V / I1_V), private 526 / 544: reading a table that another core
    // wrote costs a cross-core transfer per line, more than building the copy (~5% of the lookups).
    bool    private_tables;
};

tiles choose_tiles(const kernel_set & k, layout kind, int64_t blocks);
// the same for a kernel set of another interface (the 2-bit one: kernels_q2.h)
// (entries: table entries per block, as table_entries in kernels.h counts them; the tables of
// one step take at most 1 / l2_share of L2, at least one block)
tiles choose_tiles(int tile_n, int lut_min_n, int64_t blocks, int64_t entries, int64_t lut_rows = 16,
                   int l2_share = 8);

}  // namespace veclut
