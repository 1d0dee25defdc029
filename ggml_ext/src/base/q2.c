// Reference quantization and dequantization of Q2_V (ggml-base).
//
// Quantization, per 64-block: levels d * (q + o), q in 0..3. Candidates for (d, o) are refined
// by alternating two exact steps: give every weight its nearest level, then solve the 2x2
// (weighted) least squares for the line a * q + b through the assignment; a and b / a are
// rounded to fp16 and the candidate with the smallest squared error wins. Starts: upstream
// Q2_0's levels (d = absmax, o = -1, so the result is never worse than Q2_0's on a block) and
// min..max spread over 3, 2 and 1 steps (which hits a GPTQ-style grid exactly, whichever of
// its levels the block uses).
//
// Bit-exactness with gguf-py's numpy reference: levels and assignment in float32, sums in
// float64 in element order, no fused multiply-add (CMake compiles this file with
// -ffp-contract=off); numpy performs the same IEEE operations in the same order.

#include "veclut-types.h"

#include "ggml.h"
#include "ggml-impl.h"

#include <assert.h>
#include <math.h>
#include <string.h>

static_assert(sizeof(veclut_block_q2_v) == 20, "Q2_V block must be 20 bytes (2.5 bits per weight)");
static_assert(GGML_TYPE_Q2_V == VECLUT_TYPE_Q2_V, "ggml.h and veclut-types.h disagree on the Q2_V id");

#define QK VECLUT_QK_Q2
#define ITERS 3  // assignment / least-squares rounds per start (more change < 0.1% of the error)

static float fp16_round(float v) {
    return GGML_FP16_TO_FP32(GGML_FP32_TO_FP16(v));
}

// Nearest level of every weight (q = floor(x / d - o + 0.5) clamped to 0..3) and the weighted
// squared error of the block.
static double assign(const float * x, const float * w, float d, float o, uint8_t * q) {
    double err = 0.0;
    for (int j = 0; j < QK; ++j) {
        const float r = floorf((x[j] / d - o) + 0.5f);
        const int qj = !(r > 0.0f) ? 0 : r > 3.0f ? 3 : (int) r;
        q[j] = (uint8_t) qj;
        const float v = d * ((float) qj + o);
        const double diff = (double) x[j] - (double) v;
        err += (w ? (double) w[j] : 1.0) * diff * diff;
    }
    return err;
}

// Weighted least squares of x ~ a * q + b; false if q does not determine a line.
static bool fit(const float * x, const float * w, const uint8_t * q, double * a, double * b) {
    double s = 0.0, sq = 0.0, sqq = 0.0, sx = 0.0, sqx = 0.0;
    for (int j = 0; j < QK; ++j) {
        const double wj = w ? (double) w[j] : 1.0;
        const double qj = (double) q[j];
        const double wq = wj * qj;
        s   += wj;
        sq  += wq;
        sqq += wq * qj;
        sx  += wj * (double) x[j];
        sqx += wq * (double) x[j];
    }
    const double det = s * sqq - sq * sq;
    if (!(det > 0.0)) {
        return false;
    }
    *a = (s * sqx - sq * sx) / det;
    *b = (sqq * sx - sq * sqx) / det;
    return true;
}

// (a, b) of a line as fp16 scale and offset; false if they are not positive and finite.
static bool levels_of(double a, double b, float * d, float * o) {
    *d = fp16_round((float) a);
    if (!(*d > 0.0f) || isinf(*d)) {
        return false;
    }
    *o = fp16_round((float) (b / (double) *d));
    return isfinite(*o);
}

struct best {
    float   d, o;
    double  err;
    uint8_t q[QK];
};

static void consider(const float * x, const float * w, float d, float o, struct best * bst, uint8_t * q) {
    const double err = assign(x, w, d, o, q);
    if (err < bst->err) {
        bst->d = d;
        bst->o = o;
        bst->err = err;
        memcpy(bst->q, q, QK);
    }
}

// ITERS rounds from the line (a, b); have = false skips them.
static void refine(const float * x, const float * w, bool have, double a, double b, struct best * bst) {
    uint8_t q[QK];
    float d, o;
    for (int it = 0; have && it < ITERS; ++it) {
        if (!levels_of(a, b, &d, &o)) {
            break;
        }
        consider(x, w, d, o, bst, q);
        have = fit(x, w, q, &a, &b);
    }
}

static void quantize_block(const float * x, const float * w, veclut_block_q2_v * y) {
    float mn = x[0], mx = x[0], amax = 0.0f;
    for (int j = 0; j < QK; ++j) {
        mn = fminf(mn, x[j]);
        mx = fmaxf(mx, x[j]);
        amax = fmaxf(amax, fabsf(x[j]));
    }
    memset(y->qs, 0, sizeof(y->qs));
    // + 0: a zero is +0 whichever of -0 / +0 the min and max picked (numpy may pick the other)
    mn += 0.0f;
    mx += 0.0f;
    if (mx == mn) {  // one value: d * (0 + 1)
        y->d = GGML_FP32_TO_FP16(mx);
        y->o = GGML_FP32_TO_FP16(1.0f);
        return;
    }
    struct best bst;
    bst.d = fp16_round(amax);
    bst.o = -1.0f;
    bst.err = HUGE_VAL;
    memset(bst.q, 1, QK);  // kept only if no candidate is finite (an fp16 overflow)

    // upstream Q2_0's levels, then refined from their assignment
    uint8_t q[QK];
    double a = 0.0, b = 0.0;
    bool have = bst.d > 0.0f && !isinf(bst.d);
    if (have) {
        consider(x, w, bst.d, -1.0f, &bst, q);
        have = fit(x, w, q, &a, &b);
    }
    refine(x, w, have, a, b, &bst);
    // min..max over 3, 2 and 1 steps
    for (int steps = 3; steps >= 1; --steps) {
        refine(x, w, true, ((double) mx - (double) mn) / (double) steps, (double) mn, &bst);
    }

    y->d = GGML_FP32_TO_FP16(bst.d);
    y->o = GGML_FP32_TO_FP16(bst.o);
    for (int j = 0; j < QK; ++j) {
        y->qs[j / 4] |= (uint8_t) (bst.q[j] << (2 * (j % 4)));
    }
}

void veclut_quantize_row_q2_v_ref(const float * x, veclut_block_q2_v * y, int64_t k) {
    assert(k % QK == 0);
    for (int64_t b = 0; b < k / QK; ++b) {
        quantize_block(x + b * QK, NULL, &y[b]);
    }
}

void veclut_dequantize_row_q2_v(const veclut_block_q2_v * x, float * y, int64_t k) {
    assert(k % QK == 0);
    for (int64_t b = 0; b < k / QK; ++b) {
        const float d = GGML_FP16_TO_FP32(x[b].d);
        const float o = GGML_FP16_TO_FP32(x[b].o);
        for (int j = 0; j < QK; ++j) {
            const int q = (x[b].qs[j / 4] >> (2 * (j % 4))) & 3;
            y[b * QK + j] = d * ((float) q + o);
        }
    }
}

size_t veclut_quantize_q2_v(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix) {
    assert(n_per_row % QK == 0);
    const size_t row_size = ggml_row_size(GGML_TYPE_Q2_V, n_per_row);
    for (int64_t r = 0; r < nrows; ++r) {
        veclut_block_q2_v * y = (veclut_block_q2_v *) ((char *) dst + r * row_size);
        for (int64_t b = 0; b < n_per_row / QK; ++b) {
            quantize_block(src + r * n_per_row + b * QK, imatrix ? imatrix + b * QK : NULL, &y[b]);
        }
    }
    return nrows * row_size;
}

void veclut_q2_v_from_q2_0(const void * block_q2_0, veclut_block_q2_v * y) {
    const uint8_t * raw = (const uint8_t *) block_q2_0;
    memcpy(&y->d, raw, sizeof(y->d));
    y->o = GGML_FP32_TO_FP16(-1.0f);
    memcpy(y->qs, raw + sizeof(y->d), sizeof(y->qs));
}
