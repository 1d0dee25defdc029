// Run-time choice of the kernel set: the best one compiled into this build that this CPU can
// execute (cpu_features.h), or the one VECLUT_KERNELS names, if the CPU can execute it.

#include "kernels.h"

#include "cpu_features.h"
#include "veclut.h"

#include "ggml-cpu.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace veclut {

// read by the load-time guard in cpu_features.cpp, which is compiled without these flags
const feature_mask BUILD_FEATURES = 0
#ifdef __SSE4_2__
    | SSE42
#endif
#ifdef __AVX__
    | AVX
#endif
#ifdef __AVX2__
    | AVX2
#endif
#ifdef __FMA__
    | FMA
#endif
#ifdef __F16C__
    | F16C
#endif
#ifdef __BMI2__
    | BMI2
#endif
#ifdef __AVX512F__
    | AVX512F
#endif
#ifdef __AVX512BW__
    | AVX512BW
#endif
#ifdef __AVX512VL__
    | AVX512VL
#endif
#ifdef __AVX512VBMI__
    | AVX512VBMI
#endif
#ifdef __AVX512VNNI__
    | AVX512VNNI
#endif
#if defined(__ARM_NEON) && defined(__aarch64__)
    | NEON
#endif
#ifdef __ARM_FEATURE_DOTPROD
    | DOTPROD
#endif
    ;

namespace {

struct candidate {
    const kernel_set * set;  // nullptr: not compiled into this build
    feature_mask needs;      // what its instructions need from the CPU
};

// best first
std::vector<candidate> candidates() {
    feature_mask avx512 = AVX512F | AVX512BW | AVX512VL | AVX2 | FMA | F16C;
#if defined(__AVX512VBMI__) && defined(__AVX512VNNI__)
    avx512 |= AVX512VBMI | AVX512VNNI;  // its dot path (kernels_avx512.cpp)
#endif
    return {
        {avx512_kernels(), avx512},
        {avx2_kernels(), AVX2 | FMA | F16C},
        {neon_kernels(), NEON},
        {&scalar_kernels(), 0},
    };
}

std::string feature_list(feature_mask m) {
    std::string out;
    for (int i = 0; i < FEATURE_COUNT; ++i) {
        if (m & (1u << i)) {
            out += (out.empty() ? "" : " ") + std::string(FEATURE_NAMES[i]);
        }
    }
    return out;
}

std::string join(const std::vector<std::string> & names) {
    std::string out;
    for (const std::string & n : names) {
        out += (out.empty() ? "" : ",") + n;
    }
    return out;
}

struct choice {
    std::vector<const kernel_set *> runnable;  // best first
    std::string runnable_names, compiled;      // names, comma-separated
    std::string reason;                        // one line: why the best runnable set is the one
};

choice survey() {
    choice c;
    std::vector<std::string> runnable, compiled, skipped;
    for (const candidate & k : candidates()) {
        if (k.set == nullptr) {
            continue;
        }
        compiled.push_back(k.set->name);
        const feature_mask missing = k.needs & ~cpu_features();
        if (missing == 0) {
            c.runnable.push_back(k.set);
            runnable.push_back(k.set->name);
        } else {
            skipped.push_back(std::string(k.set->name) + " (this CPU lacks " + feature_list(missing) + ")");
        }
    }
    c.runnable_names = join(runnable);
    c.compiled = join(compiled);
    c.reason = "best compiled-in set this CPU runs";
    for (const std::string & s : skipped) {
        c.reason += "; skipped " + s;
    }
    return c;
}

const choice & surveyed() {
    static const choice c = survey();
    return c;
}

const kernel_set & choose() {
    const choice & c = surveyed();
    const char * wanted = std::getenv("VECLUT_KERNELS");
    if (wanted == nullptr || *wanted == '\0') {
        return *c.runnable.front();  // scalar is always runnable
    }
    for (const kernel_set * k : c.runnable) {
        if (std::strcmp(k->name, wanted) == 0) {
            return *k;
        }
    }
    std::fprintf(stderr, "veclut: VECLUT_KERNELS=%s is not a kernel set this build and CPU can run (compiled in: %s; %s); "
                 "choose one of %s or unset it\n", wanted, c.compiled.c_str(), c.reason.c_str(), c.runnable_names.c_str());
    std::exit(1);
}

}  // namespace

const kernel_set & active_kernels() {
    static const kernel_set & k = choose();
    return k;
}

ggml_from_float_t q8_K_quantizer(const kernel_set & k) {
    return k.quantize_q8_K ? k.quantize_q8_K : ggml_get_type_traits_cpu(GGML_TYPE_Q8_K)->from_float;
}

}  // namespace veclut

extern "C" const char * veclut_kernel_sets(void) {
    return veclut::surveyed().runnable_names.c_str();
}

extern "C" const char * veclut_kernel_sets_compiled(void) {
    return veclut::surveyed().compiled.c_str();
}

extern "C" const char * veclut_kernel_choice(void) {
    static const std::string why = [] {
        const char * wanted = std::getenv("VECLUT_KERNELS");
        return (wanted != nullptr && *wanted != '\0') ? std::string("VECLUT_KERNELS=") + wanted : veclut::surveyed().reason;
    }();
    return why.c_str();
}

extern "C" const char * veclut_active_kernel_set(void) {
    return veclut::active_kernels().name;
}

extern "C" void veclut_quantize_row_q8_K(const float * x, void * y, int64_t k) {
    veclut::q8_K_quantizer(veclut::active_kernels())(x, y, k);
}

extern "C" const char * veclut_cpu_features(void) {
    static const std::string names = veclut::feature_list(veclut::cpu_features());
    return names.c_str();
}
