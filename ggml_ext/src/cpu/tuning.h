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
};

tiles choose_tiles(const kernel_set & k, layout kind, int64_t blocks);

}  // namespace veclut
