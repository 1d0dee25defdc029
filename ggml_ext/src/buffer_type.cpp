// The CPU extra buffer type: ggml asks it which ops it takes over (supports_op) and which
// tensor traits run them (get_tensor_traits). Weights placed in its buffers are repacked once,
// at load time, into the layout the kernels read.

#include "veclut.h"

#include "ggml-backend-impl.h"
#include "ggml-cpu.h"
#include "ggml-impl.h"
#include "traits.h"

#include <cstring>

namespace veclut {

static const char * buffer_type_name(ggml_backend_buffer_type_t) {
    return VECLUT_BUFFER_TYPE_NAME;
}

static enum ggml_status buffer_init_tensor(ggml_backend_buffer_t, struct ggml_tensor * tensor) {
    tensor->extra = nullptr;  // no accelerated layout yet: every op falls back to ggml
    return GGML_STATUS_SUCCESS;
}

static void buffer_set_tensor(ggml_backend_buffer_t, struct ggml_tensor * tensor, const void * data,
                              size_t offset, size_t size) {
    memcpy((char *) tensor->data + offset, data, size);
}

static ggml_backend_buffer_t buffer_type_alloc(ggml_backend_buffer_type_t buft, size_t size) {
    ggml_backend_buffer_t buffer = ggml_backend_buft_alloc_buffer(ggml_backend_cpu_buffer_type(), size);
    if (buffer == nullptr) {
        return nullptr;
    }
    buffer->buft              = buft;
    buffer->iface.init_tensor = buffer_init_tensor;
    buffer->iface.set_tensor  = buffer_set_tensor;
    buffer->iface.get_tensor  = nullptr;  // repacked data cannot be read back as ggml's layout
    buffer->iface.cpy_tensor  = nullptr;
    return buffer;
}

static size_t buffer_type_alignment(ggml_backend_buffer_type_t) {
    return 64;  // a cache line: tiles start aligned for the widest vector loads
}

class extra_buffer_type : public ggml::cpu::extra_buffer_type {
  public:
    bool supports_op(ggml_backend_dev_t, const struct ggml_tensor *) override {
        return false;  // claims nothing until the types are registered
    }

    ggml::cpu::tensor_traits * get_tensor_traits(const struct ggml_tensor *) override {
        return nullptr;
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
            /* .get_alloc_size = */ nullptr,
            /* .is_host        = */ nullptr,
        },
        /* .device  = */ ggml_backend_reg_dev_get(ggml_backend_cpu_reg(), 0),
        /* .context = */ new veclut::extra_buffer_type(),
    };
    return &buft;
}
