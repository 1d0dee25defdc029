// ggml's generic vec_dot for I2_V / I1_V rows against Q8_K activations. The codes of a ggml
// block are laid out as in the repacked form, so the scalar kernels' block dot is reused.

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
