// The load-time layout of an accelerated weight tensor (produced by repack, read by kernels).
//
// Per row and block: the block's codes (I2_V: 64 bytes of 4 trits per 256; I1_V: 48 bytes of
// 5 trits then 4 of 4 per 256; Q2_V: 16 bytes of four 2-bit codes per 64), rows contiguous;
// then, 64-byte aligned, the block scales as float (Q2_V: pairs d, d * o).
// I2_V / I1_V also keep one float per row between codes and block scales: the scale every block
// of the row shares, or NaN where they differ. BitNet models store one scale per tensor, so their
// rows read that float instead of a block scale per 256 weights: decode, which streams the
// weights once per token, then reads 64 bytes per I2_V block instead of 68.
// Q2_V's codes are reordered so that each byte stays inside one 32-weight half (one Q8_0 scale)
// and a shift by 2j of a half's 8 bytes gives 8 consecutive weights: byte 8h + i holds weight
// 32h + 8j + i in bits 2j (j = 0..3). A group's table is built from activations 8 apart.
// Upstream TQ2_0 / TQ1_0 / Q2_0 are re-encoded into the I2_V / I1_V / Q2_V codes, so one kernel
// serves both. Upstream Q1_0 (1 bit per weight, 128 per block) becomes q1 where the kernel set
// has 1-bit kernels (q2_kernel_set::dot1): per 64-block 8 bytes of bits, as two 32-bit words,
// word h bit 4i + j = weight 32h + 8j + i (a byte holds 8 weights of one half: the index of a
// 256-entry table), and the float scale d; elsewhere it becomes two Q2_V blocks of codes 0 and 1,
// scales (2d, -d).
#pragma once

#include "ggml.h"

#include <cstddef>
#include <cmath>
#include <cstdint>

namespace veclut {

// 4-trit groups only, 5-trit groups then 4-trit groups, groups of four 2-bit codes, or bits
enum class layout { i2, i1, q2, q1 };

struct layout_info {
    int code_bytes;    // bytes of codes per block
    int groups5;       // groups of 5 trits (243-entry tables) at the start of the block
    int groups4;       // groups of 4 trits (81-entry tables; q2: 4 codes, q1: 8 bits, 256-entry tables) after them
    int table_entries; // entries of all tables of one block
    int block_k;       // weights per block (256; q2: 64, as Q2_0, half a Q1_0 block)
    int scale_floats;  // floats per block in the scales (q2: d and d * o; q1: d)
};

constexpr layout_info info_of(layout l) {
    return l == layout::i2 ? layout_info{64, 0, 64, 64 * 81, 256, 1}
         : l == layout::i1 ? layout_info{52, 48, 4, 48 * 243 + 4 * 81, 256, 1}
         : l == layout::q2 ? layout_info{16, 0, 16, 16 * 256, 64, 2}
                           : layout_info{8, 0, 8, 8 * 256, 64, 1};
}

// The layouts whose kernels take Q8_0 activations (kernels_q2.h)
constexpr bool takes_q8_0(layout l) { return l == layout::q2 || l == layout::q1; }

// Which layout a ggml type is repacked into, or false if veclut does not accelerate it.
bool layout_for_type(ggml_type type, layout * out);

// I1_V / TQ1_0's layout for this process: the active kernel set's choice, or i1 with
// VECLUT_I1_COMPACT=1 (memory before speed), or i2 with VECLUT_I1_COMPACT=0. Read once: a
// tensor's layout must not change between its repack and its matmuls.
layout i1_layout();

// Rows whose blocks share one scale (see the top)
constexpr bool has_row_scale(layout l) { return l == layout::i2 || l == layout::i1; }

// One row's block scales as the ternary kernels read them: s[b] is block b's scale, read from
// the row's shared scale (step 0) or from the block scales (step 1).
struct scale_run {
    const float * p;
    int64_t       step;
    float     operator[](int64_t b) const { return p[b * step]; }
    scale_run operator+(int64_t b) const { return {p + b * step, step}; }
};

struct packed_weights {
    layout         kind;
    int64_t        rows;       // ne01 * ne02 (experts stacked for MUL_MAT_ID)
    int64_t        blocks;     // per row: K / block_k
    const uint8_t * codes;     // rows * blocks * code_bytes
    const float   * row_scale; // has_row_scale: rows floats, the shared scale or NaN; else nullptr
    const float   * scales;    // rows * blocks * scale_floats

    const uint8_t * row_codes(int64_t r) const { return codes + r * blocks * info_of(kind).code_bytes; }
    const float   * row_scales(int64_t r) const { return scales + r * blocks * info_of(kind).scale_floats; }
    scale_run       block_scales(int64_t r) const {
        return !std::isnan(row_scale[r]) ? scale_run{row_scale + r, 0} : scale_run{row_scales(r), 1};
    }
};

size_t packed_size(const ggml_tensor * t);
packed_weights packed_view(const ggml_tensor * t);

// Repack rows [row0, row0 + nrows) from ggml's layout (`data` points at row0). Aborts with a
// clear message if a TQ2_0 block holds the non-ternary value +2.
void repack_rows(ggml_tensor * t, const void * data, int64_t row0, int64_t nrows);

}  // namespace veclut
