// Run-time choice of the kernel set: the best one this CPU supports, or VECLUT_KERNELS=<name>.

#include "kernels.h"

#include "ggml-impl.h"

#include <cstdlib>
#include <cstring>

namespace veclut {

static const kernel_set & choose() {
    const kernel_set * candidates[] = {&scalar_kernels()};  // best first; SIMD sets join here
    const char * wanted = std::getenv("VECLUT_KERNELS");
    if (wanted == nullptr || *wanted == '\0') {
        return *candidates[0];
    }
    for (const kernel_set * k : candidates) {
        if (std::strcmp(k->name, wanted) == 0) {
            return *k;
        }
    }
    GGML_ABORT("veclut: VECLUT_KERNELS=%s is not available in this build on this CPU (try: scalar)", wanted);
}

const kernel_set & active_kernels() {
    static const kernel_set & k = choose();
    return k;
}

}  // namespace veclut
