#include "packed.h"

#include "kernels.h"
#include "kernels_q2.h"
#include "veclut-types.h"
#include "veclut.h"

#include "ggml-impl.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

namespace veclut {

layout i1_layout() {
    static const layout chosen = [] {
        const char * v = std::getenv("VECLUT_I1_COMPACT");
        if (v == nullptr || *v == '\0') {
            return active_kernels().i1_layout;
        }
        return std::strcmp(v, "0") == 0 ? layout::i2 : layout::i1;
    }();
    return chosen;
}

bool layout_for_type(ggml_type type, layout * out) {
    switch ((int) type) {
        case VECLUT_TYPE_I2_V: case GGML_TYPE_TQ2_0: *out = layout::i2; return true;
        case VECLUT_TYPE_I1_V: case GGML_TYPE_TQ1_0: *out = i1_layout(); return true;
        case VECLUT_TYPE_Q2_V: case GGML_TYPE_Q2_0:  *out = layout::q2; return true;
        case GGML_TYPE_Q1_0:  // 1 bit per weight where the kernels read bits (the dot path's bytes halve)
            *out = q2_kernels_for(active_kernels()).dot1 ? layout::q1 : layout::q2;
            return true;
        default: return false;
    }
}

static size_t align64(size_t n) { return (n + 63) & ~size_t(63); }

static int64_t rows_of(const ggml_tensor * t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

size_t packed_size(const ggml_tensor * t) {
    layout kind;
    if (!layout_for_type(t->type, &kind)) {
        return ggml_nbytes(t);
    }
    const layout_info li = info_of(kind);
    const int64_t n = rows_of(t) * (t->ne[0] / li.block_k);
    const size_t row_scale = has_row_scale(kind) ? align64(rows_of(t) * sizeof(float)) : 0;
    return align64(n * li.code_bytes) + row_scale + n * li.scale_floats * sizeof(float);
}

packed_weights packed_view(const ggml_tensor * t) {
    packed_weights w;
    layout_for_type(t->type, &w.kind);
    w.rows   = rows_of(t);
    w.blocks = t->ne[0] / info_of(w.kind).block_k;
    const char * after_codes = (const char *) t->data + align64(w.rows * w.blocks * info_of(w.kind).code_bytes);
    w.codes     = (const uint8_t *) t->data;
    w.row_scale = has_row_scale(w.kind) ? (const float *) after_codes : nullptr;
    w.scales    = (const float *) (after_codes + (has_row_scale(w.kind) ? align64(w.rows * sizeof(float)) : 0));
    return w;
}

// One block of any accelerated source type, as trits and its fp16 scale.
static void source_trits(ggml_type type, const char * block, int8_t * trits, uint16_t * d, const ggml_tensor * t) {
    switch ((int) type) {
        case VECLUT_TYPE_I2_V: {
            const auto * x = (const veclut_block_i2_v *) block;
            veclut_i2_v_to_trits(x, trits);
            *d = x->d;
        } break;
        case VECLUT_TYPE_I1_V: {
            const auto * x = (const veclut_block_i1_v *) block;
            veclut_i1_v_to_trits(x, trits);
            *d = x->d;
        } break;
        case GGML_TYPE_TQ2_0:
            if (!veclut_tq2_0_to_trits(block, trits, d)) {
                GGML_ABORT("veclut: TQ2_0 tensor '%s' holds the value +2, which is not ternary; "
                           "run with VECLUT_NO_UPSTREAM=1 to use upstream's TQ2_0 kernel for it", t->name);
            }
            break;
        case GGML_TYPE_TQ1_0:
            veclut_tq1_0_to_trits(block, trits, d);
            break;
        default:
            GGML_ABORT("veclut: type %s cannot be repacked", ggml_type_name(type));
    }
}

// The sources of the 2-bit layout, read one 64-weight block at a time: its codes q (0..3, in
// file order) and the float pair (s0, s1) the kernels apply as weight = s0 * q + s1.
using q2_reader = void (*)(const char * row, int64_t b, uint8_t * q, float * s);

// Q2_V: codes as they are, s = (d, d * o), exact in float (fp16 x fp16).
static void read_q2_v(const char * row, int64_t b, uint8_t * q, float * s) {
    veclut_block_q2_v blk;
    memcpy(&blk, row + b * sizeof(blk), sizeof(blk));
    for (int k = 0; k < VECLUT_QK_Q2; ++k) {  // weight k in bits 2(k % 4) of byte k / 4
        q[k] = (blk.qs[k / 4] >> (2 * (k % 4))) & 3;
    }
    s[0] = GGML_FP16_TO_FP32(blk.d);
    s[1] = s[0] * GGML_FP16_TO_FP32(blk.o);
}

// Q2_0: Q2_V with o = -1 (levels -d, 0, d, 2d).
static void read_q2_0(const char * row, int64_t b, uint8_t * q, float * s) {
    veclut_block_q2_v blk;
    veclut_q2_v_from_q2_0(row + b * ggml_type_size(GGML_TYPE_Q2_0), &blk);
    read_q2_v((const char *) &blk, 0, q, s);
}

// Q1_0 ({ half d; uint8 qs[16] } per 128; weight j is bit j % 8 of qs[j / 8], value +d for a 1
// and -d for a 0: ggml-quants.c dequantize_row_q1_0), 64-block b = half b % 2 of block b / 2,
// as q = bit and s = (2d, -d). Lossless: d is an fp16 value read into float exactly, 2d is
// exact in float (one more exponent, at most 131008, far below FLT_MAX: an fp16 Q2_V scale
// would overflow for d > 32752, which is why the pair is stored as floats, never as Q2_V's
// fp16 d and o), -d is exact, and s0 * q + s1 is -d for q = 0 and 2d - d = d for q = 1, both
// exact in float (Sterbenz). The kernels compute s0 * sum(q a) + s1 * sum(a) = sum(a * w).
static void read_q1_0(const char * row, int64_t b, uint8_t * q, float * s) {
    const char * blk = row + (b / 2) * ggml_type_size(GGML_TYPE_Q1_0);
    uint16_t d16;
    memcpy(&d16, blk, sizeof(d16));
    const uint8_t * bits = (const uint8_t *) blk + sizeof(d16) + 8 * (b % 2);
    for (int k = 0; k < VECLUT_QK_Q2; ++k) {
        q[k] = (bits[k / 8] >> (k % 8)) & 1;
    }
    const float d = GGML_FP16_TO_FP32(d16);
    s[0] = 2.0f * d;
    s[1] = -d;
}

static q2_reader q2_reader_for(ggml_type type) {
    switch ((int) type) {
        case VECLUT_TYPE_Q2_V: return read_q2_v;
        case GGML_TYPE_Q2_0:   return read_q2_0;
        case GGML_TYPE_Q1_0:   return read_q1_0;
        default: GGML_ABORT("veclut: type %s is not of the 2-bit layout", ggml_type_name(type));
    }
}

// Codes reordered for the kernels (packed.h): weight k of a 64-block in byte 8 (k / 32) + k % 8,
// bits 2 ((k % 32) / 8).
static void repack_q2_rows(ggml_tensor * t, const packed_weights & w, const void * data, int64_t row0, int64_t nrows) {
    const q2_reader read = q2_reader_for(t->type);
    for (int64_t r = row0; r < row0 + nrows; ++r) {
        const char * src = (const char *) data + (r - row0) * ggml_row_size(t->type, t->ne[0]);
        for (int64_t b = 0; b < w.blocks; ++b) {
            uint8_t q[VECLUT_QK_Q2];
            float * s = const_cast<float *>(w.scales) + (r * w.blocks + b) * 2;
            read(src, b, q, s);
            uint8_t * out = const_cast<uint8_t *>(w.codes) + (r * w.blocks + b) * info_of(layout::q2).code_bytes;
            memset(out, 0, info_of(layout::q2).code_bytes);
            for (int k = 0; k < VECLUT_QK_Q2; ++k) {
                out[8 * (k / 32) + k % 8] |= (uint8_t) (q[k] << (2 * ((k % 32) / 8)));
            }
        }
    }
}

// Q1_0 as q1: the bits of read_q1_0's codes, word h bit 4i + j = weight 32h + 8j + i, and d.
static void repack_q1_rows(ggml_tensor * t, const packed_weights & w, const void * data, int64_t row0, int64_t nrows) {
    for (int64_t r = row0; r < row0 + nrows; ++r) {
        const char * src = (const char *) data + (r - row0) * ggml_row_size(t->type, t->ne[0]);
        for (int64_t b = 0; b < w.blocks; ++b) {
            uint8_t q[VECLUT_QK_Q2];
            float s[2];
            read_q1_0(src, b, q, s);
            uint32_t words[2] = {0, 0};
            for (int k = 0; k < VECLUT_QK_Q2; ++k) {
                const int h = k / 32, i = k % 8, j = (k % 32) / 8;
                words[h] |= (uint32_t) q[k] << (4 * i + j);
            }
            memcpy(const_cast<uint8_t *>(w.row_codes(r)) + b * sizeof(words), words, sizeof(words));
            const_cast<float *>(w.row_scales(r))[b] = -s[1];
        }
    }
}

// The scale all n blocks share, bit for bit (so -0 and 0 differ), or NaN
static float shared_scale(const float * s, int64_t n) {
    for (int64_t b = 1; b < n; ++b) {
        if (memcmp(&s[b], &s[0], sizeof(float)) != 0) {
            return NAN;
        }
    }
    return s[0];
}

void repack_rows(ggml_tensor * t, const void * data, int64_t row0, int64_t nrows) {
    const packed_weights w = packed_view(t);
    if (w.kind == layout::q2) {
        repack_q2_rows(t, w, data, row0, nrows);
        return;
    }
    if (w.kind == layout::q1) {
        repack_q1_rows(t, w, data, row0, nrows);
        return;
    }
    const layout_info li = info_of(w.kind);
    const size_t block_size = ggml_type_size(t->type);
    uint8_t * codes  = const_cast<uint8_t *>(w.codes);
    float   * scales = const_cast<float *>(w.scales);
    const uint8_t * code_map = active_kernels().i2_code_map;  // the kernels that will read them
    int8_t trits[VECLUT_QK];
    for (int64_t r = row0; r < row0 + nrows; ++r) {
        const char * src = (const char *) data + (r - row0) * ggml_row_size(t->type, t->ne[0]);
        for (int64_t b = 0; b < w.blocks; ++b) {
            uint16_t d;
            source_trits(t->type, src + b * block_size, trits, &d, t);
            uint8_t * out = codes + (r * w.blocks + b) * li.code_bytes;
            if (w.kind == layout::i2) {
                veclut_block_i2_v blk;
                veclut_i2_v_from_trits(trits, &blk);
                for (size_t i = 0; i < sizeof(blk.qs); ++i) {
                    out[i] = code_map ? code_map[blk.qs[i]] : blk.qs[i];
                }
            } else {
                veclut_block_i1_v blk;
                veclut_i1_v_from_trits(trits, &blk);
                memcpy(out, blk.qs, sizeof(blk.qs));
                memcpy(out + sizeof(blk.qs), blk.qh, sizeof(blk.qh));
            }
            scales[r * w.blocks + b] = GGML_FP16_TO_FP32(d);
        }
        const_cast<float *>(w.row_scale)[r] = shared_scale(w.row_scales(r), w.blocks);
    }
}

}  // namespace veclut

extern "C" const char * veclut_i1_layout(void) {
    static const std::string text = [] {
        const char * v = std::getenv("VECLUT_I1_COMPACT");
        const std::string why = v != nullptr && *v != '\0' ? std::string("VECLUT_I1_COMPACT=") + v
                                                          : std::string("the ") + veclut::active_kernels().name + " set's choice";
        return (veclut::i1_layout() == veclut::layout::i1 ? "i1: 5 trits per byte, 1.625 bits per weight ("
                                                           : "i2: 4 trits per byte, 2 bits per weight (") + why + ")";
    }();
    return text.c_str();
}
