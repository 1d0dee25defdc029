// veclut's programs' door to the CPU backend (cpu-backend.h).

#include "cpu-backend.h"

#include <cstdio>
#include <cstdlib>

namespace veclut_cpu {

namespace {

template <typename F>
F entry(ggml_backend_reg_t reg, const char * name, const char * program) {
    auto fn = (F) ggml_backend_reg_get_proc_address(reg, name);
    if (fn == nullptr) {
        std::fprintf(stderr, "%s: the CPU backend of this build does not offer %s; build it with veclut (`veclut build`)\n",
                     program, name);
        std::exit(1);
    }
    return fn;
}

backend load(const char * program) {
    if (ggml_backend_reg_by_name("CPU") == nullptr) {  // GGML_BACKEND_DL: nothing is linked in
        ggml_backend_load_all();
    }
    backend b{};
    b.reg = ggml_backend_reg_by_name("CPU");
    b.dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (b.reg == nullptr || b.dev == nullptr) {
        std::fprintf(stderr, "%s: found no ggml CPU library this CPU can run (libggml-cpu-*.so beside the program or "
                     "libggml); rebuild its profile with `veclut build --profile NAME`\n", program);
        std::exit(1);
    }
    b.set_n_threads = entry<ggml_backend_set_n_threads_t>(b.reg, "ggml_backend_set_n_threads", program);
    b.get_features = entry<ggml_backend_get_features_t>(b.reg, "ggml_backend_get_features", program);
    b.veclut_buffer_type = entry<ggml_backend_buffer_type_t (*)(void)>(b.reg, "ggml_backend_veclut_buffer_type", program);
    using text_fn = const char * (*)(void);
    b.kernel_sets = entry<text_fn>(b.reg, "veclut_kernel_sets", program);
    b.active_kernel_set = entry<text_fn>(b.reg, "veclut_active_kernel_set", program);
    b.kernel_sets_compiled = entry<text_fn>(b.reg, "veclut_kernel_sets_compiled", program);
    b.kernel_choice = entry<text_fn>(b.reg, "veclut_kernel_choice", program);
    b.cpu_features = entry<text_fn>(b.reg, "veclut_cpu_features", program);
    b.i1_layout = entry<text_fn>(b.reg, "veclut_i1_layout", program);
    b.cpu_variant = entry<text_fn>(b.reg, "veclut_cpu_variant", program);
    b.set_attention = entry<int (*)(int)>(b.reg, "veclut_set_attention", program);
    b.attention_runs = entry<long (*)(void)>(b.reg, "veclut_attention_runs", program);
    return b;
}

}  // namespace

const backend & cpu(const char * program) {
    static const backend b = load(program);
    return b;
}

}  // namespace veclut_cpu
