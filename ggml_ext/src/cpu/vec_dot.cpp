// ggml's generic vec_dot for I2_V / I1_V rows against Q8_K activations (the codes of a ggml
// block are laid out as in the repacked form, so the scalar kernels' block dot is reused) and
// for Q2_V rows against Q8_0 activations.

#include "veclut-cpu.h"

#include "kernels.h"

#include "ggml-impl.h"

namespace {

template <typename block, veclut::layout kind>
void vec_dot(int n, float * s, const void * vx, const void * vy) {
    const auto * x = (const block *) vx;
    const auto * y = (const block_q8_K *) vy;
    float sum = 0.0f;
    for (int b = 0; b < n / QK_K; ++b) {
        const int32_t isum = veclut::dot_block(kind, (const uint8_t *) &x[b], y[b].qs);
        sum += GGML_FP16_TO_FP32(x[b].d) * y[b].d * (float) isum;
    }
    *s = sum;
}

}  // namespace

extern "C" void veclut_vec_dot_i2_v_q8_K(int n, float * s, size_t, const void * vx, size_t, const void * vy, size_t, int nrc) {
    GGML_ASSERT(nrc == 1);
    vec_dot<veclut_block_i2_v, veclut::layout::i2>(n, s, vx, vy);
}

extern "C" void veclut_vec_dot_i1_v_q8_K(int n, float * s, size_t, const void * vx, size_t, const void * vy, size_t, int nrc) {
    GGML_ASSERT(nrc == 1);
    vec_dot<veclut_block_i1_v, veclut::layout::i1>(n, s, vx, vy);
}

// sum_j x_j * d * (q_j + o) = d * sum over the two Q8_0 halves of dy * (sum q8 * q + o * sum q8),
// in the order of upstream's Q2_0 vec_dot (per-half float sums, then the block scale)
extern "C" void veclut_vec_dot_q2_v_q8_0(int n, float * s, size_t, const void * vx, size_t, const void * vy, size_t, int nrc) {
    GGML_ASSERT(nrc == 1);
    const auto * x = (const veclut_block_q2_v *) vx;
    const auto * y = (const block_q8_0 *) vy;
    float sum = 0.0f;
    for (int b = 0; b < n / VECLUT_QK_Q2; ++b) {
        const float o = GGML_FP16_TO_FP32(x[b].o);
        float block = 0.0f;
        for (int h = 0; h < 2; ++h) {
            const block_q8_0 & yb = y[2 * b + h];
            int32_t dot = 0, act = 0;
            for (int j = 0; j < 32; ++j) {
                const int q = (x[b].qs[8 * h + j / 4] >> (2 * (j % 4))) & 3;
                dot += q * yb.qs[j];
                act += yb.qs[j];
            }
            block += GGML_FP16_TO_FP32(yb.d) * ((float) dot + o * (float) act);
        }
        sum += GGML_FP16_TO_FP32(x[b].d) * block;
    }
    *s = sum;
}
