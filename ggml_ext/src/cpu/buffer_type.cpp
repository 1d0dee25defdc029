// The CPU extra buffer type: ggml asks it which ops it takes over (supports_op) and which
// tensor traits run them (get_tensor_traits). Weights placed in its buffers are repacked once,
// at load time, into the layout the kernels read (packed.h).

#include "veclut.h"

#include "attention.h"
#include "matmul.h"
#include "packed.h"

#include "ggml-backend-impl.h"
#include "ggml-cpu.h"
#include "ggml-impl.h"
#include "traits.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <cstring>

namespace veclut {

// Upstream's types veclut accelerates; VECLUT_NO_UPSTREAM=1 leaves them to upstream's kernels
// (for comparisons).
static constexpr ggml_type UPSTREAM_TYPES[] = {GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0, GGML_TYPE_Q2_0, GGML_TYPE_Q1_0};

static bool accelerates(ggml_type type) {
    static const bool upstream_off = [] {
        const char * v = std::getenv("VECLUT_NO_UPSTREAM");
        return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
    }();
    layout kind;
    if (!layout_for_type(type, &kind)) {
        return false;
    }
    return !(upstream_off && std::find(std::begin(UPSTREAM_TYPES), std::end(UPSTREAM_TYPES), type) != std::end(UPSTREAM_TYPES));
}

static const char * buffer_type_name(ggml_backend_buffer_type_t) {
    return VECLUT_BUFFER_TYPE_NAME;
}

static enum ggml_status buffer_init_tensor(ggml_backend_buffer_t, struct ggml_tensor * tensor) {
    tensor->extra = accelerates(tensor->type) ? (void *) the_matmul_traits() : nullptr;
    return GGML_STATUS_SUCCESS;
}

static void buffer_set_tensor(ggml_backend_buffer_t, struct ggml_tensor * tensor, const void * data,
                              size_t offset, size_t size) {
    if (tensor->extra == nullptr) {
        memcpy((char *) tensor->data + offset, data, size);
        return;
    }
    const size_t row = ggml_row_size(tensor->type, tensor->ne[0]);
    GGML_ASSERT(offset % row == 0 && size % row == 0 && "veclut repacks whole rows");
    repack_rows(tensor, data, (int64_t) (offset / row), (int64_t) (size / row));
}

static void buffer_get_tensor(ggml_backend_buffer_t, const struct ggml_tensor * tensor, void * data,
                              size_t offset, size_t size) {
    GGML_ASSERT(tensor->extra == nullptr && "repacked weights cannot be read back in ggml's layout");
    memcpy(data, (const char *) tensor->data + offset, size);
}

static ggml_backend_buffer_t buffer_type_alloc(ggml_backend_buffer_type_t buft, size_t size) {
    ggml_backend_buffer_t buffer = ggml_backend_buft_alloc_buffer(ggml_backend_cpu_buffer_type(), size);
    if (buffer == nullptr) {
        return nullptr;
    }
    buffer->buft              = buft;
    buffer->iface.init_tensor = buffer_init_tensor;
    buffer->iface.set_tensor  = buffer_set_tensor;
    buffer->iface.get_tensor  = buffer_get_tensor;
    buffer->iface.cpy_tensor  = nullptr;
    return buffer;
}

static size_t buffer_type_alignment(ggml_backend_buffer_type_t) {
    return 64;  // a cache line: tiles start aligned for the widest vector loads
}

static size_t buffer_type_alloc_size(ggml_backend_buffer_type_t, const struct ggml_tensor * tensor) {
    return accelerates(tensor->type) ? packed_size(tensor) : ggml_nbytes(tensor);
}

static bool is_ours(const ggml_tensor * t) {
    return t->buffer != nullptr && t->buffer->buft == ggml_backend_veclut_buffer_type();
}

static bool host(const ggml_tensor * t) {
    return t->buffer == nullptr || ggml_backend_buft_is_host(t->buffer->buft);
}

class extra_buffer_type : public ggml::cpu::extra_buffer_type {
  public:
    // MUL_MAT on one 2-D weight matrix, or MUL_MAT_ID on a stack of experts (3-D weights)
    bool supports_op(ggml_backend_dev_t, const struct ggml_tensor * op) override {
        const bool moe = op->op == GGML_OP_MUL_MAT_ID;
        if (op->op != GGML_OP_MUL_MAT && !moe) {
            return false;
        }
        const ggml_tensor * w = op->src[0];
        const ggml_tensor * x = op->src[1];
        return is_ours(w) && accelerates(w->type) && (moe || w->ne[2] == 1) && w->ne[3] == 1 &&
               x->type == GGML_TYPE_F32 && x->nb[0] == sizeof(float) && host(x) && (!moe || host(op->src[2]));
    }

    ggml::cpu::tensor_traits * get_tensor_traits(const struct ggml_tensor * op) override {
        if ((op->op == GGML_OP_MUL_MAT || op->op == GGML_OP_MUL_MAT_ID) && is_ours(op->src[0])) {
            return (ggml::cpu::tensor_traits *) op->src[0]->extra;
        }
        // ggml asks every extra buffer type about every op, weights or not: attention is taken here
        return attention_for(op);
    }
};

}  // namespace veclut

ggml_backend_buffer_type_t ggml_backend_veclut_buffer_type(void) {
    static struct ggml_backend_buffer_type buft = {
        /* .iface   = */ {
            /* .get_name       = */ veclut::buffer_type_name,
            /* .alloc_buffer   = */ veclut::buffer_type_alloc,
            /* .get_alignment  = */ veclut::buffer_type_alignment,
            /* .get_max_size   = */ nullptr,
            /* .get_alloc_size = */ veclut::buffer_type_alloc_size,
            /* .is_host        = */ nullptr,
        },
        /* .device  = */ ggml_backend_reg_dev_get(ggml_backend_cpu_reg(), 0),
        /* .context = */ new veclut::extra_buffer_type(),
    };
    return &buft;
}
