// MUL_MAT on repacked weights: threads, tiles and dynamic chunks around a kernel_set.
#pragma once

#include "traits.h"

namespace veclut {

class matmul_traits : public ggml::cpu::tensor_traits {
  public:
    bool work_size(int n_threads, const struct ggml_tensor * op, size_t & size) override;
    bool compute_forward(struct ggml_compute_params * params, struct ggml_tensor * op) override;
};

matmul_traits * the_matmul_traits();

}  // namespace veclut
