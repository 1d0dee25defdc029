// FLASH_ATTN_EXT for a few query rows (decode, batched decode, short drafts) on an F16 KV cache.
//
// Upstream's CPU kernel handles such rows one KV position at a time: a dot product, an expf and a
// rescale of an F16 accumulator per position and head. Here a block of positions is done at once:
// its K rows converted to F32, all its scores, one softmax update per block, and the V rows added
// into F32 accumulators that stay in registers. Claimed through the extra buffer type's
// get_tensor_traits, which ggml asks for every op; anything else stays upstream's.
#pragma once

#include "traits.h"

namespace veclut {

class attention_traits : public ggml::cpu::tensor_traits {
  public:
    bool work_size(int n_threads, const struct ggml_tensor * op, size_t & size) override;
    bool compute_forward(struct ggml_compute_params * params, struct ggml_tensor * op) override;
};

// The traits for op if veclut runs it (VECLUT_ATTENTION=0 or veclut_set_attention(0): never).
attention_traits * attention_for(const struct ggml_tensor * op);

}  // namespace veclut
