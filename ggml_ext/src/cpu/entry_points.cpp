// veclut's entry points by name (veclut.h), handed out through the CPU backend's
// get_proc_address: the one door into a ggml-cpu library that ggml loaded at run time.

#include "veclut.h"

#include <cstring>

#ifndef VECLUT_CPU_VARIANT
#define VECLUT_CPU_VARIANT ""  // set per library by ggml_ext/CMakeLists.txt in a multi-variant build
#endif

extern "C" const char * veclut_cpu_variant(void) {
    return VECLUT_CPU_VARIANT;
}

namespace {

struct entry_point {
    const char * name;
    void * address;
};

const entry_point ENTRY_POINTS[] = {
    {"ggml_backend_veclut_buffer_type", (void *) ggml_backend_veclut_buffer_type},
    {"veclut_kernel_sets", (void *) veclut_kernel_sets},
    {"veclut_active_kernel_set", (void *) veclut_active_kernel_set},
    {"veclut_kernel_sets_compiled", (void *) veclut_kernel_sets_compiled},
    {"veclut_kernel_choice", (void *) veclut_kernel_choice},
    {"veclut_cpu_features", (void *) veclut_cpu_features},
    {"veclut_i1_layout", (void *) veclut_i1_layout},
    {"veclut_cpu_variant", (void *) veclut_cpu_variant},
    {"veclut_quantize_row_q8_K", (void *) veclut_quantize_row_q8_K},
    {"veclut_set_attention", (void *) veclut_set_attention},
    {"veclut_attention_runs", (void *) veclut_attention_runs},
};

}  // namespace

extern "C" void * veclut_get_proc_address(const char * name) {
    for (const entry_point & e : ENTRY_POINTS) {
        if (std::strcmp(e.name, name) == 0) {
            return e.address;
        }
    }
    return nullptr;
}
