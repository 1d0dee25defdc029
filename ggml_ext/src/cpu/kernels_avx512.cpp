// avx512 kernels (not written yet: the scalar set serves this ISA meanwhile).

#include "kernels.h"

namespace veclut {

const kernel_set * avx512_kernels() {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    return nullptr;
#else
    return nullptr;  // not compiled for this ISA
#endif
}

}  // namespace veclut
