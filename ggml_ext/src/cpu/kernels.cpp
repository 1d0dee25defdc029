// Run-time choice of the kernel set: the best one this CPU supports, or VECLUT_KERNELS=<name>.

#include "kernels.h"

#include "veclut.h"

#include "ggml-impl.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace veclut {

// best first; a SIMD set is present only if ggml-cpu was compiled for its ISA
static std::vector<const kernel_set *> candidates() {
    return {avx512_kernels(), avx2_kernels(), neon_kernels(), &scalar_kernels()};
}

static const kernel_set & choose() {
    const char * wanted = std::getenv("VECLUT_KERNELS");
    std::string available;
    for (const kernel_set * k : candidates()) {
        if (k == nullptr) {
            continue;
        }
        if (wanted == nullptr || *wanted == '\0' || std::strcmp(k->name, wanted) == 0) {
            return *k;
        }
        available += available.empty() ? k->name : std::string(", ") + k->name;
    }
    GGML_ABORT("veclut: VECLUT_KERNELS=%s is not available in this build (available: %s)", wanted, available.c_str());
}

const kernel_set & active_kernels() {
    static const kernel_set & k = choose();
    return k;
}

}  // namespace veclut

extern "C" const char * veclut_kernel_sets(void) {
    static const std::string names = [] {
        std::string out;
        for (const veclut::kernel_set * k : veclut::candidates()) {
            if (k != nullptr) {
                out += out.empty() ? k->name : std::string(",") + k->name;
            }
        }
        return out;
    }();
    return names.c_str();
}

extern "C" const char * veclut_active_kernel_set(void) {
    return veclut::active_kernels().name;
}
