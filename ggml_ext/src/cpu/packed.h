// The load-time layout of an accelerated weight tensor (produced by repack, read by kernels).
//
// Per row and 256-block: the block's base-3 codes (I2_V: 64 bytes of 4 trits; I1_V: 48 bytes of
// 5 trits then 4 of 4), rows contiguous; then, 64-byte aligned, the block scales as float.
// Upstream TQ2_0 / TQ1_0 are re-encoded into the I2_V / I1_V codes, so one kernel serves both.
#pragma once

#include "ggml.h"

#include <cstddef>
#include <cstdint>

namespace veclut {

enum class layout { i2, i1 };  // 4-trit groups only, or 5-trit groups then 4-trit groups

struct layout_info {
    int code_bytes;    // bytes of codes per 256-block
    int groups5;       // groups of 5 trits (243-entry tables) at the start of the block
    int groups4;       // groups of 4 trits (81-entry tables) after them
    int table_entries; // entries of all tables of one block
};

constexpr layout_info info_of(layout l) {
    return l == layout::i2 ? layout_info{64, 0, 64, 64 * 81} : layout_info{52, 48, 4, 48 * 243 + 4 * 81};
}

// Which layout a ggml type is repacked into, or false if veclut does not accelerate it.
bool layout_for_type(ggml_type type, layout * out);

struct packed_weights {
    layout         kind;
    int64_t        rows;     // ne01 * ne02 (experts stacked for MUL_MAT_ID)
    int64_t        blocks;   // per row: K / 256
    const uint8_t * codes;   // rows * blocks * code_bytes
    const float   * scales;  // rows * blocks

    const uint8_t * row_codes(int64_t r) const { return codes + r * blocks * info_of(kind).code_bytes; }
    const float   * row_scales(int64_t r) const { return scales + r * blocks; }
};

size_t packed_size(const ggml_tensor * t);
packed_weights packed_view(const ggml_tensor * t);

// Repack rows [row0, row0 + nrows) from ggml's layout (`data` points at row0). Aborts with a
// clear message if a TQ2_0 block holds the non-ternary value +2.
void repack_rows(ggml_tensor * t, const void * data, int64_t row0, int64_t nrows);

}  // namespace veclut
