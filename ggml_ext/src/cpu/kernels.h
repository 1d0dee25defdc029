// The kernel interface: one set of functions per ISA (scalar reference, AVX2, AVX-512, NEON),
// chosen at run time. The orchestration in matmul.cpp (threads, tiles, chunks) is shared.
#pragma once

#include "packed.h"

#include "ggml-cpu.h"  // ggml_from_float_t

#ifndef GGML_COMMON_DECL
#define GGML_COMMON_DECL_CPP
#endif
#include "ggml-common.h"  // block_q8_K: activations, one absmax scale per 256-block per token

namespace veclut {

struct kernel_set {
    const char * name;
    int tile_n;         // tokens per table tile (entries of one table row)
    int lut_min_n;      // below this many tokens the dot-product path is faster

    // Dot-product path (small N): for rows [row0, row0+nrows) and nt tokens, acts[n] points at
    // token n's Q8_K blocks and prep + n * prep_stride at its prepared activations (see below);
    // out[r * out_stride + n] = sum over the row.
    void (*dot)(const packed_weights & w, int64_t row0, int64_t nrows,
                const block_q8_K * const * acts, const uint8_t * prep, size_t prep_stride,
                int nt, float * out, int64_t out_stride);

    // Vector-LUT path, table build: for block b and nt <= tile_n tokens, every table of the block:
    // tables[(group_offset + code) * tile_n + n] = signed sum of token n's activations of that
    // group selected by the code's trits. Also act_scale[n] = token n's block scale.
    void (*build_tables)(layout kind, const block_q8_K * const * acts, int64_t b, int nt,
                         int16_t * tables, float * act_scale);

    // Vector-LUT path, lookups: rows [row0, row0+nrows), blocks [b0, b0+kb) whose tables (and
    // scales) were built consecutively; acc[r * tile_n + n] += row scale * act scale * block sum.
    void (*lut_accumulate)(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                           const int16_t * tables, const float * act_scale, int nt, float * acc);

    // Optional (both nullptr if unused): activations rearranged once per MUL_MAT for the dot path
    // (e.g. digit-major order for a VNNI dot product), shared by all threads like the Q8_K data:
    // dot_prep_bytes(kind, blocks) bytes per token, written by dot_prepare from its Q8_K blocks.
    size_t (*dot_prep_bytes)(layout kind, int64_t blocks);
    void (*dot_prepare)(layout kind, const block_q8_K * act, int64_t blocks, uint8_t * out);

    // rows per vector-LUT call (tiles::row_chunk) the lookups need to reuse their tables
    int lut_rows = 16;

    // I2_V codes as this set stores them: repack writes i2_code_map[code] for each base-3 code
    // (nullptr: the code itself), and its 4-trit tables are indexed by that byte, so one group's
    // table spans i2_group_entries entries (81 without a map). Lets a set choose a byte that is
    // cheaper to split into digits.
    const uint8_t * i2_code_map = nullptr;
    int i2_group_entries = 81;

    // Activations to Q8_K, byte for byte what ggml's quantize_row_q8_K writes (nullptr: ggml's,
    // which on x86 is the scalar reference).
    void (*quantize_q8_K)(const float * x, void * y, int64_t k) = nullptr;

    // The layout I1_V / TQ1_0 weights are repacked into: i1 (5 trits per byte, 1.625 bits per
    // weight), or i2 (4 trits per byte, 2 bits) where this set's 4-trit kernels are faster than
    // its 5-trit ones at every N; VECLUT_I1_COMPACT=1 keeps i1 (i1_layout() in packed.h).
    layout i1_layout = layout::i1;
};

// Table entries of one block as kernel set k lays them out (i2: 64 groups of i2_group_entries).
inline int64_t table_entries(const kernel_set & k, layout kind) {
    return kind == layout::i2 ? 64 * (int64_t) k.i2_group_entries : info_of(kind).table_entries;
}

// What turns activation rows into Q8_K for kernel set k: its own quantizer, or ggml's.
ggml_from_float_t q8_K_quantizer(const kernel_set & k);

const kernel_set & scalar_kernels();
// SIMD sets: nullptr when this build was not compiled for the ISA.
const kernel_set * avx512_kernels();
const kernel_set * avx2_kernels();
const kernel_set * neon_kernels();

// Integer dot product of one 256-block of codes (layout order) with 256 Q8_K activations.
int32_t dot_block(layout kind, const uint8_t * codes, const int8_t * q);

// The kernels for this CPU (or the set named by VECLUT_KERNELS), with env overrides applied.
const kernel_set & active_kernels();

}  // namespace veclut
