// veclut's quant types: the one definition of their ids, block layouts and reference code.
// ggml.h (patches/0003), llama.h (patches/0004) and gguf-py (patches/0005) carry the same
// numbers; static asserts in ggml_ext and a pytest check them against this file.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Ids chosen clear of upstream (0-42 today, growing upwards slowly), ik_llama.cpp (97-99,
// 133-158, 202-233, 335-399), vlut.cpp (39-47) and bitnet.cpp / T-MAC (36-39).
#define VECLUT_TYPE_I2_V 80
#define VECLUT_TYPE_I1_V 81
#define VECLUT_TYPE_Q2_V 82
#define VECLUT_FTYPE_MOSTLY_I2_V 80
#define VECLUT_FTYPE_MOSTLY_I1_V 81
#define VECLUT_FTYPE_MOSTLY_Q2_V 82

#define VECLUT_QK 256  // weights per block, along K (as upstream's QK_K)

// I2_V: ternary, 4 trits per byte as a base-3 code, so the byte is the table index:
//   qs[i] = sum_{j<4} (t[4i+j] + 1) * 3^j  (0..80),  weight = d * t.
// 66 bytes per 256 weights = 2.0625 bits per weight.
typedef struct {
    uint8_t  qs[VECLUT_QK / 4];
    uint16_t d;  // fp16 block scale
} veclut_block_i2_v;

// I1_V: ternary, 5 trits per byte (codes 0..242) for weights 0..239 of the block, then
// 4 trits per byte (codes 0..80) for weights 240..255, same digit order as I2_V.
// 54 bytes per 256 weights = 1.6875 bits per weight.
// A byte above a slot's largest code (81-255 for 4 trits, 243-255 for 5) is found only in a
// damaged file, which row validation refuses; every path that reads one anyway takes its low
// digits, i.e. the byte modulo 3^4 or 3^5, and never reads outside a table.
#define VECLUT_I1_V_QS5 48  // bytes of 5 trits
#define VECLUT_I1_V_QS4 4   // bytes of 4 trits
typedef struct {
    uint8_t  qs[VECLUT_I1_V_QS5];
    uint8_t  qh[VECLUT_I1_V_QS4];
    uint16_t d;
} veclut_block_i1_v;

// Q2_V: 2-bit, 4 levels, weight = d * (q + o) with q in 0..3 computed in fp32. Byte i holds
// weights 4i..4i+3, weight 4i+j in bits 2j..2j+1 (upstream Q2_0's order), so the byte is the
// index of a 256-entry table. o = -1 gives upstream Q2_0 (levels -d, 0, d, 2d); o = -zero
// gives asymmetric INT2 with a group scale and zero point (GPTQ-style w2g64 / w2g128).
// 20 bytes per 64 weights = 2.5 bits per weight.
#define VECLUT_QK_Q2 64
typedef struct {
    uint16_t d;  // fp16 scale
    uint16_t o;  // fp16 offset in units of d
    uint8_t  qs[VECLUT_QK_Q2 / 4];
} veclut_block_q2_v;

// Reference code (ggml-base): quantize from float (d = absmax of the block, trit = round(x/d),
// as upstream TQ2_0 does, so ternary-valued input with an fp16 scale is kept exactly),
// dequantize, and row validation for gguf loading.
void   veclut_quantize_row_i2_v_ref(const float * x, veclut_block_i2_v * y, int64_t k);
void   veclut_dequantize_row_i2_v(const veclut_block_i2_v * x, float * y, int64_t k);
size_t veclut_quantize_i2_v(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
void   veclut_quantize_row_i1_v_ref(const float * x, veclut_block_i1_v * y, int64_t k);
void   veclut_dequantize_row_i1_v(const veclut_block_i1_v * x, float * y, int64_t k);
size_t veclut_quantize_i1_v(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
// Q2_V from float: per 64-block the scale and offset that minimise the squared error, weighted
// by imatrix (n_per_row importances) when given; see q2.c. Deterministic float operations in a
// fixed order, so gguf-py's numpy reference gives the same bytes.
void   veclut_quantize_row_q2_v_ref(const float * x, veclut_block_q2_v * y, int64_t k);
void   veclut_dequantize_row_q2_v(const veclut_block_q2_v * x, float * y, int64_t k);
size_t veclut_quantize_q2_v(const float * src, void * dst, int64_t nrows, int64_t n_per_row, const float * imatrix);
// Upstream Q2_0 block (raw bytes, ggml-common.h: { half d; uint8 qs[16] }) as Q2_V: same codes, o = -1.
void   veclut_q2_v_from_q2_0(const void * block_q2_0, veclut_block_q2_v * y);
// false (and a log line) if a code is out of range or a scale is not finite.
bool   veclut_validate_row_data(int type, const void * data, size_t nbytes);

// Trits of one 256-block (values -1, 0, +1) to and from each layout; used by the
// converters and by the load-time repack of upstream TQ1_0 / TQ2_0.
void veclut_i2_v_from_trits(const int8_t * trits, veclut_block_i2_v * y);
void veclut_i2_v_to_trits(const veclut_block_i2_v * x, int8_t * trits);
void veclut_i1_v_from_trits(const int8_t * trits, veclut_block_i1_v * y);
void veclut_i1_v_to_trits(const veclut_block_i1_v * x, int8_t * trits);
// Upstream blocks (passed as raw bytes, layouts of ggml-common.h) to trits. TQ2_0 can hold the
// non-ternary value +2 (2-bit code 3): then this returns false.
bool veclut_tq2_0_to_trits(const void * block_tq2_0, int8_t * trits, uint16_t * d);
void veclut_tq1_0_to_trits(const void * block_tq1_0, int8_t * trits, uint16_t * d);

// Initialisers for ggml's type-trait tables (used by the patched ggml.c / ggml-cpu.c).
#define VECLUT_TYPE_TRAITS_I2_V {                                          \
    .type_name      = "i2_v",                                              \
    .blck_size      = VECLUT_QK,                                           \
    .type_size      = sizeof(veclut_block_i2_v),                           \
    .is_quantized   = true,                                                \
    .to_float       = (ggml_to_float_t) veclut_dequantize_row_i2_v,        \
    .from_float_ref = (ggml_from_float_t) veclut_quantize_row_i2_v_ref,    \
}
#define VECLUT_TYPE_TRAITS_I1_V {                                          \
    .type_name      = "i1_v",                                              \
    .blck_size      = VECLUT_QK,                                           \
    .type_size      = sizeof(veclut_block_i1_v),                           \
    .is_quantized   = true,                                                \
    .to_float       = (ggml_to_float_t) veclut_dequantize_row_i1_v,        \
    .from_float_ref = (ggml_from_float_t) veclut_quantize_row_i1_v_ref,    \
}
#define VECLUT_TYPE_TRAITS_Q2_V {                                          \
    .type_name      = "q2_v",                                              \
    .blck_size      = VECLUT_QK_Q2,                                        \
    .type_size      = sizeof(veclut_block_q2_v),                           \
    .is_quantized   = true,                                                \
    .to_float       = (ggml_to_float_t) veclut_dequantize_row_q2_v,        \
    .from_float_ref = (ggml_from_float_t) veclut_quantize_row_q2_v_ref,    \
}

#ifdef __cplusplus
}
#endif
