// Reference quantization, dequantization and validation of I2_V and I1_V, and validation of
// Q2_V (ggml-base; Q2_V's quantization is in q2.c).
// Kept simple and obviously right: every SIMD path and the numpy reference in gguf-py are
// tested against these functions.

#include "veclut-types.h"

#include "ggml.h"
#include "ggml-impl.h"

#include <assert.h>
#include <math.h>
#include <string.h>

static_assert(sizeof(veclut_block_i2_v) == 66, "I2_V block must be 66 bytes");
static_assert(sizeof(veclut_block_i1_v) == 54, "I1_V block must be 54 bytes");
static_assert(VECLUT_I1_V_QS5 * 5 + VECLUT_I1_V_QS4 * 4 == VECLUT_QK, "I1_V covers the block");
static_assert(GGML_TYPE_I2_V == VECLUT_TYPE_I2_V && GGML_TYPE_I1_V == VECLUT_TYPE_I1_V,
              "ggml.h and veclut-types.h disagree on the type ids");

// base-3 code of n trits, digit j = trit j + 1 (so the code is the table index)
static uint8_t encode(const int8_t * t, int n) {
    int code = 0;
    for (int j = n - 1; j >= 0; --j) {
        code = code * 3 + (t[j] + 1);
    }
    return (uint8_t) code;
}

static void decode(uint8_t code, int8_t * t, int n) {
    for (int j = 0; j < n; ++j) {
        t[j] = (int8_t) (code % 3) - 1;
        code /= 3;
    }
}

// Round half away from zero, as upstream TQ2_0 (lroundf) and gguf-py's np_roundf do.
static int round_away(float x) {
    return (int) roundf(x);
}

// d = absmax of the block; trit = round(x / d), clamped (only rounding could exceed 1).
static uint16_t ternarize_block(const float * x, int8_t * t) {
    float amax = 0.0f;
    for (int j = 0; j < VECLUT_QK; ++j) {
        amax = fmaxf(amax, fabsf(x[j]));
    }
    const float id = amax > 0.0f ? 1.0f / amax : 0.0f;
    for (int j = 0; j < VECLUT_QK; ++j) {
        const int q = round_away(x[j] * id);
        t[j] = (int8_t) (q < -1 ? -1 : q > 1 ? 1 : q);
    }
    return GGML_FP32_TO_FP16(amax);
}

void veclut_i2_v_from_trits(const int8_t * trits, veclut_block_i2_v * y) {
    for (int i = 0; i < VECLUT_QK / 4; ++i) {
        y->qs[i] = encode(trits + 4 * i, 4);
    }
}

void veclut_i2_v_to_trits(const veclut_block_i2_v * x, int8_t * trits) {
    for (int i = 0; i < VECLUT_QK / 4; ++i) {
        decode(x->qs[i], trits + 4 * i, 4);
    }
}

void veclut_i1_v_from_trits(const int8_t * trits, veclut_block_i1_v * y) {
    for (int i = 0; i < VECLUT_I1_V_QS5; ++i) {
        y->qs[i] = encode(trits + 5 * i, 5);
    }
    for (int i = 0; i < VECLUT_I1_V_QS4; ++i) {
        y->qh[i] = encode(trits + 5 * VECLUT_I1_V_QS5 + 4 * i, 4);
    }
}

void veclut_i1_v_to_trits(const veclut_block_i1_v * x, int8_t * trits) {
    for (int i = 0; i < VECLUT_I1_V_QS5; ++i) {
        decode(x->qs[i], trits + 5 * i, 5);
    }
    for (int i = 0; i < VECLUT_I1_V_QS4; ++i) {
        decode(x->qh[i], trits + 5 * VECLUT_I1_V_QS5 + 4 * i, 4);
    }
}

void veclut_quantize_row_i2_v_ref(const float * x, veclut_block_i2_v * y, int64_t k) {
    assert(k % VECLUT_QK == 0);
    int8_t t[VECLUT_QK];
    for (int64_t b = 0; b < k / VECLUT_QK; ++b) {
        y[b].d = ternarize_block(x + b * VECLUT_QK, t);
        veclut_i2_v_from_trits(t, &y[b]);
    }
}

void veclut_quantize_row_i1_v_ref(const float * x, veclut_block_i1_v * y, int64_t k) {
    assert(k % VECLUT_QK == 0);
    int8_t t[VECLUT_QK];
    for (int64_t b = 0; b < k / VECLUT_QK; ++b) {
        y[b].d = ternarize_block(x + b * VECLUT_QK, t);
        veclut_i1_v_from_trits(t, &y[b]);
    }
}

static void dequantize_trits(const int8_t * t, uint16_t d, float * y) {
    const float scale = GGML_FP16_TO_FP32(d);
    for (int j = 0; j < VECLUT_QK; ++j) {
        y[j] = (float) t[j] * scale;
    }
}

void veclut_dequantize_row_i2_v(const veclut_block_i2_v * x, float * y, int64_t k) {
    assert(k % VECLUT_QK == 0);
    int8_t t[VECLUT_QK];
    for (int64_t b = 0; b < k / VECLUT_QK; ++b) {
        veclut_i2_v_to_trits(&x[b], t);
        dequantize_trits(t, x[b].d, y + b * VECLUT_QK);
    }
}

void veclut_dequantize_row_i1_v(const veclut_block_i1_v * x, float * y, int64_t k) {
    assert(k % VECLUT_QK == 0);
    int8_t t[VECLUT_QK];
    for (int64_t b = 0; b < k / VECLUT_QK; ++b) {
        veclut_i1_v_to_trits(&x[b], t);
        dequantize_trits(t, x[b].d, y + b * VECLUT_QK);
    }
}

// The importance matrix cannot change a ternarisation that keeps the block's absmax, so it is
// accepted and ignored (as upstream TQ1_0 / TQ2_0 do).
size_t veclut_quantize_i2_v(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    (void) imatrix;
    const size_t row_size = ggml_row_size(GGML_TYPE_I2_V, n_per_row);
    for (int64_t r = 0; r < nrows; ++r) {
        veclut_quantize_row_i2_v_ref(src + r * n_per_row, (veclut_block_i2_v *) ((char *) dst + r * row_size), n_per_row);
    }
    return nrows * row_size;
}

size_t veclut_quantize_i1_v(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    (void) imatrix;
    const size_t row_size = ggml_row_size(GGML_TYPE_I1_V, n_per_row);
    for (int64_t r = 0; r < nrows; ++r) {
        veclut_quantize_row_i1_v_ref(src + r * n_per_row, (veclut_block_i1_v *) ((char *) dst + r * row_size), n_per_row);
    }
    return nrows * row_size;
}

static bool valid_scale(uint16_t d, size_t block) {
    const float f = GGML_FP16_TO_FP32(d);
    if (!isfinite(f)) {
        GGML_LOG_ERROR("%s: block %zu has a non-finite scale\n", __func__, block);
        return false;
    }
    return true;
}

static bool valid_codes(const uint8_t * codes, int n, uint8_t max, size_t block) {
    for (int i = 0; i < n; ++i) {
        if (codes[i] > max) {
            GGML_LOG_ERROR("%s: block %zu holds code %d, above the largest ternary code %d\n", __func__, block, codes[i], max);
            return false;
        }
    }
    return true;
}

bool veclut_validate_row_data(int type, const void * data, size_t nbytes) {
    if (type == VECLUT_TYPE_I2_V) {
        const veclut_block_i2_v * x = (const veclut_block_i2_v *) data;
        for (size_t b = 0; b < nbytes / sizeof(*x); ++b) {
            if (!valid_scale(x[b].d, b) || !valid_codes(x[b].qs, VECLUT_QK / 4, 80, b)) {
                return false;
            }
        }
        return true;
    }
    if (type == VECLUT_TYPE_I1_V) {
        const veclut_block_i1_v * x = (const veclut_block_i1_v *) data;
        for (size_t b = 0; b < nbytes / sizeof(*x); ++b) {
            if (!valid_scale(x[b].d, b) || !valid_codes(x[b].qs, VECLUT_I1_V_QS5, 242, b) ||
                !valid_codes(x[b].qh, VECLUT_I1_V_QS4, 80, b)) {
                return false;
            }
        }
        return true;
    }
    if (type == VECLUT_TYPE_Q2_V) {
        const veclut_block_q2_v * x = (const veclut_block_q2_v *) data;
        for (size_t b = 0; b < nbytes / sizeof(*x); ++b) {
            if (!valid_scale(x[b].d, b) || !valid_scale(x[b].o, b)) {  // every 2-bit code is valid
                return false;
            }
        }
        return true;
    }
    return false;
}

// Upstream layouts (ggml-common.h): TQ2_0 = { uint8 qs[64]; half d }, 2-bit fields q with
// trit = q - 1, element (j*4 + l*32 + m) for j in {0, 32}, l < 4, m < 32 from qs[j + m] >> 2l.
bool veclut_tq2_0_to_trits(const void * block, int8_t * trits, uint16_t * d) {
    const uint8_t * qs = (const uint8_t *) block;
    bool ternary = true;
    int8_t * out = trits;
    for (int j = 0; j < 64; j += 32) {
        for (int l = 0; l < 4; ++l) {
            for (int m = 0; m < 32; ++m) {
                const int q = (qs[j + m] >> (2 * l)) & 3;
                ternary = ternary && q != 3;
                *out++ = (int8_t) (q - 1);
            }
        }
    }
    memcpy(d, qs + 64, sizeof(*d));
    return ternary;
}

// TQ1_0 = { uint8 qs[48]; uint8 qh[4]; half d }: 5 trits per qs byte and 4 per qh byte in a
// fixed-point base-3 form; digit n of byte q is ((uint8)(q * 3^n) * 3) >> 8.
static int8_t tq1_digit(uint8_t q, int n) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    const uint8_t shifted = (uint8_t) (q * pow3[n]);
    return (int8_t) ((((uint16_t) shifted) * 3) >> 8) - 1;
}

void veclut_tq1_0_to_trits(const void * block, int8_t * trits, uint16_t * d) {
    const uint8_t * qs = (const uint8_t *) block;
    const uint8_t * qh = qs + 48;
    int8_t * out = trits;
    for (int n = 0; n < 5; ++n) {
        for (int m = 0; m < 32; ++m) {
            *out++ = tq1_digit(qs[m], n);
        }
    }
    for (int n = 0; n < 5; ++n) {
        for (int m = 0; m < 16; ++m) {
            *out++ = tq1_digit(qs[32 + m], n);
        }
    }
    for (int n = 0; n < 4; ++n) {
        for (int j = 0; j < 4; ++j) {
            *out++ = tq1_digit(qh[j], n);
        }
    }
    memcpy(d, qh + 4, sizeof(*d));
}
