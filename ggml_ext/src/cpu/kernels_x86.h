// Pieces shared by the x86 kernel sets (compiled in kernels_avx2.cpp whenever __AVX2__ is on,
// which every AVX-512 build also has).
#pragma once

#include "kernels.h"

#include <immintrin.h>

namespace veclut {
namespace x86 {

// Prepared activations for the x86 dot paths, per token and 256-block: D vectors of 64 bytes
// (D = 4 digits for I2_V, 5 for I1_V), a'_j[g] = the activation that digit j of code g multiplies
// (zero where no code is), then 64 bytes holding int32 -sum(activations) in lane 0 and zeros.
size_t prep_bytes(layout kind, int64_t blocks);
void prepare(layout kind, const block_q8_K * act, int64_t blocks, uint8_t * out);

// AVX2 dot path on base-3 I2_V codes (the AVX-512 set's when the build has no VBMI/VNNI), and on
// the AVX2 set's nibble-split ones.
void avx2_dot(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_K * const * acts,
              const uint8_t * prep, size_t prep_stride, int nt, float * out, int64_t out_stride);
void avx2_dot_nibbles(const packed_weights & w, int64_t row0, int64_t nrows, const block_q8_K * const * acts,
                      const uint8_t * prep, size_t prep_stride, int nt, float * out, int64_t out_stride);

// Q8_K activations as ggml's reference quantizer writes them, 8 floats at a time.
void quantize_q8_K(const float * x, void * y, int64_t k);

// Rows are K-contiguous, so one step's codes of consecutive rows lie a row apart, a stride the
// hardware prefetcher does not follow: the LUT kernels fetch those of the row PREFETCH_ROWS ahead.
constexpr int64_t PREFETCH_ROWS = 32;

inline void prefetch_step_codes(const packed_weights & w, int64_t row, int64_t b0, int64_t kb, int code_bytes) {
    if (row + PREFETCH_ROWS >= w.rows) {
        return;
    }
    const char * ahead = (const char *) w.row_codes(row + PREFETCH_ROWS) + b0 * code_bytes;
    for (int64_t off = 0; off < kb * code_bytes; off += 64) {
        _mm_prefetch(ahead + off, _MM_HINT_T0);
    }
    _mm_prefetch(ahead + kb * code_bytes - 1, _MM_HINT_T0);
}

}  // namespace x86
}  // namespace veclut
