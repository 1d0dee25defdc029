// neon kernels (not written yet: the scalar set serves this ISA meanwhile).

#include "kernels.h"

namespace veclut {

const kernel_set * neon_kernels() {
#if defined(__ARM_NEON)
    return nullptr;
#else
    return nullptr;  // not compiled for this ISA
#endif
}

}  // namespace veclut
