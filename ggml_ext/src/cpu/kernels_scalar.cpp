// Portable scalar kernels: the reference every SIMD kernel is tested against, and the fallback.
//
// Overflow bound (why int16 block sums are safe): Q8_K activations are in [-127, 127] (upstream
// quantizes with iscale = -127/max), trits are in {-1, 0, 1}, so any table entry and any partial
// sum inside one 256-block is bounded by sum |q| <= 256 * 127 = 32512 < 32767. Sums are widened
// to float (with the two block scales) once per block, so nothing can overflow.

#include "kernels.h"

#include <cstring>

namespace veclut {

static constexpr int SCALAR_TILE = 16;

// Trits of every byte read as a 4- and as a 5-trit code, for the dot-product path. It also serves
// ggml's generic path (vec_dot.cpp), which reads codes straight from the file, so it has an entry
// for every byte: one above the largest code (81+ / 243+, only in a corrupt file) reads as the
// reference decode and the repack read it (ternary.c): its digits beyond the code's trits dropped.
// Built by the compiler (constexpr): a constructor run at load time would be code compiled for
// this library's ISA, and ggml loads every CPU variant library to ask it for its score, including
// those this CPU cannot run.
struct trit_table {
    int8_t t4[256][4];
    int8_t t5[256][5];
    constexpr trit_table() : t4(), t5() {
        for (int c = 0; c < 256; ++c) {
            int code = c;
            for (int j = 0; j < 5; ++j) {
                t5[c][j] = (int8_t) (code % 3 - 1);
                if (j < 4) {
                    t4[c][j] = t5[c][j];
                }
                code /= 3;
            }
        }
    }
};
static constexpr trit_table TRITS;

int32_t dot_block(layout kind, const uint8_t * codes, const int8_t * q) {
    const layout_info li = info_of(kind);
    int32_t sum = 0;
    for (int g = 0; g < li.groups5; ++g, q += 5) {
        const int8_t * t = TRITS.t5[codes[g]];
        sum += t[0] * q[0] + t[1] * q[1] + t[2] * q[2] + t[3] * q[3] + t[4] * q[4];
    }
    for (int g = li.groups5; g < li.groups5 + li.groups4; ++g, q += 4) {
        const int8_t * t = TRITS.t4[codes[g]];
        sum += t[0] * q[0] + t[1] * q[1] + t[2] * q[2] + t[3] * q[3];
    }
    return sum;
}

static void scalar_dot(const packed_weights & w, int64_t row0, int64_t nrows,
                       const block_q8_K * const * acts, const uint8_t *, size_t,
                       int nt, float * out, int64_t out_stride) {
    const int cb = info_of(w.kind).code_bytes;
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r);
        const scale_run scales = w.block_scales(row0 + r);
        for (int n = 0; n < nt; ++n) {
            float sum = 0.0f;
            for (int64_t b = 0; b < w.blocks; ++b) {
                sum += scales[b] * acts[n][b].d * (float) dot_block(w.kind, codes + b * cb, acts[n][b].qs);
            }
            out[r * out_stride + n] = sum;
        }
    }
}

// One group's table for nt tokens: entry(code) = sum_j (digit_j - 1) * a_j, built digit by
// digit (entries c + 3^j and c + 2*3^j extend entry c by a_j and 2*a_j): one add per entry.
static void build_group(const block_q8_K * const * acts, int64_t b, int offset, int width, int nt, int16_t * table) {
    for (int n = 0; n < nt; ++n) {
        const int8_t * a = acts[n][b].qs + offset;
        int16_t * t = table + n;
        int base = 0;
        for (int j = 0; j < width; ++j) {
            base -= a[j];
        }
        t[0] = (int16_t) base;
        int span = 1;
        for (int j = 0; j < width; ++j, span *= 3) {
            for (int c = 0; c < span; ++c) {
                t[(c + span) * SCALAR_TILE]     = (int16_t) (t[c * SCALAR_TILE] + a[j]);
                t[(c + 2 * span) * SCALAR_TILE] = (int16_t) (t[c * SCALAR_TILE] + 2 * a[j]);
            }
        }
    }
}

static void scalar_build_tables(layout kind, const block_q8_K * const * acts, int64_t b, int nt,
                                int16_t * tables, float * act_scale) {
    const layout_info li = info_of(kind);
    int16_t * t = tables;
    for (int g = 0; g < li.groups5; ++g, t += 243 * SCALAR_TILE) {
        build_group(acts, b, 5 * g, 5, nt, t);
    }
    for (int g = 0; g < li.groups4; ++g, t += 81 * SCALAR_TILE) {
        build_group(acts, b, 5 * li.groups5 + 4 * g, 4, nt, t);
    }
    for (int n = 0; n < nt; ++n) {
        act_scale[n] = acts[n][b].d;
    }
}

static void scalar_lut_accumulate(const packed_weights & w, int64_t row0, int64_t nrows, int64_t b0, int64_t kb,
                                  const int16_t * tables, const float * act_scale, int nt, float * acc) {
    const layout_info li = info_of(w.kind);
    for (int64_t r = 0; r < nrows; ++r) {
        const uint8_t * codes = w.row_codes(row0 + r) + b0 * li.code_bytes;
        const scale_run scales = w.block_scales(row0 + r) + b0;
        float * out = acc + r * SCALAR_TILE;
        for (int64_t b = 0; b < kb; ++b, codes += li.code_bytes) {
            const int16_t * t = tables + b * li.table_entries * SCALAR_TILE;
            int16_t sum[SCALAR_TILE] = {0};  // bounded by 32512: see the top of this file
            for (int g = 0; g < li.groups5; ++g, t += 243 * SCALAR_TILE) {
                const int16_t * entry = t + codes[g] * SCALAR_TILE;
                for (int n = 0; n < nt; ++n) {
                    sum[n] += entry[n];
                }
            }
            for (int g = li.groups5; g < li.groups5 + li.groups4; ++g, t += 81 * SCALAR_TILE) {
                const int16_t * entry = t + codes[g] * SCALAR_TILE;
                for (int n = 0; n < nt; ++n) {
                    sum[n] += entry[n];
                }
            }
            const float * as = act_scale + b * SCALAR_TILE;
            for (int n = 0; n < nt; ++n) {
                out[n] += scales[b] * as[n] * (float) sum[n];
            }
        }
    }
}

const kernel_set & scalar_kernels() {
    static const kernel_set set = {
        "scalar", SCALAR_TILE, 4, scalar_dot, scalar_build_tables, scalar_lut_accumulate, nullptr, nullptr,
    };
    return set;
}

}  // namespace veclut
