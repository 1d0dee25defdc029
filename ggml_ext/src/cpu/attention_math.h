// Vector helpers of the attention kernels: 8 floats as a GCC/Clang vector extension, which each
// ggml-cpu variant compiles for its own ISA (two SSE or NEON registers, one AVX register), plus
// the one thing those extensions lack, F16 -> F32, per ISA.
#pragma once

#include "ggml-impl.h"
#include "simd-mappings.h"  // GGML_CPU_FP16_TO_FP32

#include <cstdint>
#include <cstring>

#if defined(__F16C__)
#include <immintrin.h>
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#endif

// Internal inline functions only: how a build without AVX passes a 32-byte vector does not matter.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace veclut {

typedef int32_t v8i __attribute__((vector_size(32)));

typedef float v8 __attribute__((vector_size(32)));

inline v8 load8(const float * p) {
    v8 v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

inline void store8(float * p, v8 v) {
    std::memcpy(p, &v, sizeof(v));
}

inline float sum8(v8 v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

// 8 halves to floats: one instruction where the ISA has it (ggml's own conversion elsewhere)
inline v8 half8(const ggml_fp16_t * p) {
#if defined(__F16C__)
    return (v8) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p));
#elif defined(__ARM_NEON) && defined(__aarch64__)
    const float16x8_t h = vld1q_f16((const __fp16 *) p);
    const float32x4_t lo = vcvt_f32_f16(vget_low_f16(h)), hi = vcvt_high_f32_f16(h);
    v8 r;
    std::memcpy(&r, &lo, sizeof(lo));
    std::memcpy((char *) &r + sizeof(lo), &hi, sizeof(hi));
    return r;
#else
    v8 r;
    for (int i = 0; i < 8; ++i) {
        r[i] = GGML_CPU_FP16_TO_FP32(p[i]);
    }
    return r;
#endif
}

// q (F32) . k (F16) over n
inline float dot_f16(const float * q, const ggml_fp16_t * k, int64_t n) {
    v8 s0 = {}, s1 = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 += load8(q + i) * half8(k + i);
        s1 += load8(q + i + 8) * half8(k + i + 8);
    }
    for (; i + 8 <= n; i += 8) {
        s0 += load8(q + i) * half8(k + i);
    }
    float s = sum8(s0 + s1);
    for (; i < n; ++i) {
        s += q[i] * GGML_CPU_FP16_TO_FP32(k[i]);
    }
    return s;
}

inline void scale_row(float * x, int64_t n, float f) {
    for (int64_t i = 0; i < n; ++i) {
        x[i] *= f;
    }
}

// acc[0..n) += p * v[0..n)
inline void add_weighted_row(float * acc, float p, const ggml_fp16_t * v, int64_t n) {
    int64_t d = 0;
    for (; d + 8 <= n; d += 8) {
        store8(acc + d, load8(acc + d) + p * half8(v + d));
    }
    for (; d < n; ++d) {
        acc[d] += p * GGML_CPU_FP16_TO_FP32(v[d]);
    }
}

// exp(x) of 8 floats: 2^n * e^r with n = round(x / ln 2) and |r| <= ln 2 / 2, e^r by its Taylor
// polynomial to degree 6 (relative error < 2e-7 over that range); x below -87 (where e^x is
// below the smallest normal float, -INFINITY included) gives 0.
inline v8 exp8(v8 x) {
    const v8 zero = {};
    const v8i tiny = x < -87.0f;
    x = x > 88.0f ? zero + 88.0f : x;
    x = x < -87.0f ? zero - 87.0f : x;
    const v8 shifter = zero + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
    const v8 t = x * 1.44269504f + shifter;
    const v8 n = t - shifter;
    const v8 r = (x - n * 0.693145752f) - n * 1.42860677e-6f;  // ln 2 in two parts: exact n * hi
    v8 p = zero + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const v8i bits = (((v8i) t - (v8i) shifter) + 127) << 23;  // 2^n as a float's bits
    v8 scale;
    std::memcpy(&scale, &bits, sizeof(scale));
    const v8 y = p * scale;
    return tiny ? zero : y;
}

}  // namespace veclut
