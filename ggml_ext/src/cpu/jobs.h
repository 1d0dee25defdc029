// Routing of MUL_MAT and MUL_MAT_ID into jobs: one job is one weight matrix (an expert, or the
// whole src0) times the activation rows routed to it, each with its own output row. The kernels
// see only jobs, so a mixture of experts needs no kernel of its own.
#pragma once

#include "ggml.h"

#include <cstdint>

namespace veclut {

struct job {
    int64_t wrow0;   // first weight row of the matrix in the packed tensor (expert * M)
    int64_t first;   // first routed position (index into the position arrays)
    int64_t n;       // routed positions (activation rows) of this job
    int64_t chunk0;  // first global row chunk of the dot path (dot jobs only)
};

// Shapes of the routing, known before any data is read (for the work-buffer size).
struct routing_size {
    int64_t src_rows;   // activation rows of src1, each quantized once
    int64_t positions;  // routed (activation row, output row) pairs
    int64_t matrices;   // weight matrices (experts; 1 for MUL_MAT)
};

routing_size routing_size_of(const ggml_tensor * op);

// Fills, for every position p in job order, src_index[p] (row of src1, in the order src1's rows
// are quantized) and out[p] (the dst row it writes); jobs[] gets one entry per matrix with at
// least one position, in matrix order. Returns the number of jobs. `count` is scratch of
// matrices + 1 entries. Single-threaded: thread 0 runs it while the others quantize.
int64_t route(const ggml_tensor * op, int64_t * src_index, float ** out, job * jobs, int64_t * count);

// Row `n` of a tensor whose rows are flattened in order over dims 1..3.
const float * flat_row(const ggml_tensor * t, int64_t n);

}  // namespace veclut
