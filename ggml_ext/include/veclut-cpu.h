// veclut's entries in ggml-cpu's type-trait table (used by the patched ggml-cpu.c): the
// vec_dot that ggml's generic MUL_MAT path uses when a weight is not in veclut's buffer.
#pragma once

#include "veclut-types.h"

#ifdef __cplusplus
extern "C" {
#endif

void veclut_vec_dot_i2_v_q8_K(int n, float * s, size_t bs, const void * vx, size_t bx, const void * vy, size_t by, int nrc);
void veclut_vec_dot_i1_v_q8_K(int n, float * s, size_t bs, const void * vx, size_t bx, const void * vy, size_t by, int nrc);
// Q2_V takes Q8_0 activations (32 per scale) like upstream Q2_0, so their results agree.
void veclut_vec_dot_q2_v_q8_0(int n, float * s, size_t bs, const void * vx, size_t bx, const void * vy, size_t by, int nrc);

#define VECLUT_CPU_TRAITS_I2_V {                                        \
    .from_float   = (ggml_from_float_t) veclut_quantize_row_i2_v_ref,   \
    .vec_dot      = veclut_vec_dot_i2_v_q8_K,                           \
    .vec_dot_type = GGML_TYPE_Q8_K,                                     \
    .nrows        = 1,                                                  \
}
#define VECLUT_CPU_TRAITS_I1_V {                                        \
    .from_float   = (ggml_from_float_t) veclut_quantize_row_i1_v_ref,   \
    .vec_dot      = veclut_vec_dot_i1_v_q8_K,                           \
    .vec_dot_type = GGML_TYPE_Q8_K,                                     \
    .nrows        = 1,                                                  \
}
#define VECLUT_CPU_TRAITS_Q2_V {                                        \
    .from_float   = (ggml_from_float_t) veclut_quantize_row_q2_v_ref,   \
    .vec_dot      = veclut_vec_dot_q2_v_q8_0,                           \
    .vec_dot_type = GGML_TYPE_Q8_0,                                     \
    .nrows        = 1,                                                  \
}

#ifdef __cplusplus
}
#endif
