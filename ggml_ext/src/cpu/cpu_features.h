// What this CPU can execute, asked at run time (cpuid through the compiler's builtins on x86,
// the kernel's hardware capabilities on Arm), and what this ggml-cpu library was compiled for.
// Plain bit masks, no containers: cpu_features.cpp is compiled for baseline x86-64 and must not
// share template code with files compiled for wider ISAs.
#pragma once

#include <cstdint>

namespace veclut {

using feature_mask = uint32_t;

enum cpu_feature : feature_mask {
    SSE42 = 1u << 0, AVX = 1u << 1, AVX2 = 1u << 2, FMA = 1u << 3, F16C = 1u << 4, BMI2 = 1u << 5,
    AVX512F = 1u << 6, AVX512BW = 1u << 7, AVX512VL = 1u << 8, AVX512VBMI = 1u << 9, AVX512VNNI = 1u << 10,
    NEON = 1u << 11, DOTPROD = 1u << 12,
};
constexpr int FEATURE_COUNT = 13;

// cpuid's / the kernel's name of feature bit i ("avx512f", "asimddp")
extern const char * const FEATURE_NAMES[FEATURE_COUNT];

// the features this CPU has (of those above)
feature_mask cpu_features();

// The ISA extensions the compiler was told to use for ggml-cpu (its -m / -march flags): code
// anywhere in the library may use them. Defined where the library's own flags apply.
extern const feature_mask BUILD_FEATURES;

}  // namespace veclut
