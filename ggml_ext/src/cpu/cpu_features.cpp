// Run-time CPU features, and the guard that turns "this library was compiled for an ISA the
// CPU lacks" into one sentence at load time instead of an illegal instruction later.
//
// On x86 this file alone is compiled for baseline x86-64 (ggml_ext/CMakeLists.txt): with AVX
// enabled even a plain copy becomes a VEX-encoded instruction, which an SSE-only CPU cannot run.
// So it uses no templates shared with other files, only bit masks, arrays and stdio.

#include "cpu_features.h"

#include <cstdio>
#include <cstdlib>

#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace veclut {

const char * const FEATURE_NAMES[FEATURE_COUNT] = {
    "sse4.2", "avx", "avx2", "fma", "f16c", "bmi2",
    "avx512f", "avx512bw", "avx512vl", "avx512vbmi", "avx512vnni", "asimd", "asimddp",
};

feature_mask cpu_features() {
    feature_mask have = 0;
#if defined(__x86_64__) || defined(__i386__)
    // before any constructor may have run: initialise the builtins' cpuid data ourselves.
    // __builtin_cpu_supports takes string literals only; it also checks that the OS saves the
    // AVX / AVX-512 register state.
    __builtin_cpu_init();
    const struct { feature_mask bit; bool present; } x86[] = {
        {SSE42, __builtin_cpu_supports("sse4.2") != 0},         {AVX, __builtin_cpu_supports("avx") != 0},
        {AVX2, __builtin_cpu_supports("avx2") != 0},            {FMA, __builtin_cpu_supports("fma") != 0},
        {F16C, __builtin_cpu_supports("f16c") != 0},            {BMI2, __builtin_cpu_supports("bmi2") != 0},
        {AVX512F, __builtin_cpu_supports("avx512f") != 0},      {AVX512BW, __builtin_cpu_supports("avx512bw") != 0},
        {AVX512VL, __builtin_cpu_supports("avx512vl") != 0},    {AVX512VBMI, __builtin_cpu_supports("avx512vbmi") != 0},
        {AVX512VNNI, __builtin_cpu_supports("avx512vnni") != 0},
    };
    for (const auto & f : x86) {
        have |= f.present ? f.bit : 0;
    }
#elif defined(__aarch64__) && defined(__linux__)
    const unsigned long hwcap = getauxval(AT_HWCAP);
    have |= (hwcap & HWCAP_ASIMD) ? NEON : 0;
    have |= (hwcap & HWCAP_ASIMDDP) ? DOTPROD : 0;
#endif
    return have;
}

// Runs when the library is loaded, first of its initialisers (priority 101): a library compiled
// for extensions this CPU lacks would die of an illegal instruction somewhere in ggml; say which
// and stop instead. VECLUT_SKIP_CPU_CHECK=1 lets an experiment go on regardless.
// Not in a GGML_BACKEND_DL build: there ggml loads every ggml-cpu variant library to ask its
// ggml_backend_score (0 when this CPU lacks what it was compiled for) and keeps only the best,
// so stopping the process at load time would stop that choice.
#ifndef GGML_BACKEND_DL
__attribute__((constructor(101))) static void refuse_a_cpu_this_build_cannot_run_on() {
    const char * skip = std::getenv("VECLUT_SKIP_CPU_CHECK");
    const feature_mask missing = BUILD_FEATURES & ~cpu_features();
    if (missing == 0 || (skip != nullptr && skip[0] == '1')) {
        return;
    }
    std::fputs("veclut: this ggml-cpu library was compiled for CPU extensions this CPU lacks (", stderr);
    const char * sep = "";
    for (int i = 0; i < FEATURE_COUNT; ++i) {
        if (missing & (1u << i)) {
            std::fprintf(stderr, "%s%s", sep, FEATURE_NAMES[i]);
            sep = " ";
        }
    }
    std::fputs("); build it on this machine (`veclut build`), or build the portable profile for several CPUs\n", stderr);
    std::fflush(stderr);
    std::_Exit(1);
}
#endif

}  // namespace veclut
