// avx2 kernels (not written yet: the scalar set serves this ISA meanwhile).

#include "kernels.h"

namespace veclut {

const kernel_set * avx2_kernels() {
#if defined(__AVX2__)
    return nullptr;
#else
    return nullptr;  // not compiled for this ISA
#endif
}

}  // namespace veclut
