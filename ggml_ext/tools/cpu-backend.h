// The CPU backend as veclut's programs reach it: through ggml's backend registry, never by linking
// ggml-cpu. So one program serves a build with a single ggml-cpu library and one whose CPU backend
// is a ggml-cpu-<variant> module that ggml loads at run time (GGML_BACKEND_DL, the portable profile).
#pragma once

#include "ggml-backend.h"

namespace veclut_cpu {

struct backend {
    ggml_backend_reg_t reg;
    ggml_backend_dev_t dev;
    ggml_backend_set_n_threads_t set_n_threads;
    ggml_backend_get_features_t get_features;  // what the loaded library was compiled for ("AVX2" -> "1")
    // veclut's entry points (veclut.h), from the library ggml loaded
    ggml_backend_buffer_type_t (*veclut_buffer_type)(void);
    const char * (*kernel_sets)(void);
    const char * (*active_kernel_set)(void);
    const char * (*kernel_sets_compiled)(void);
    const char * (*kernel_choice)(void);
    const char * (*cpu_features)(void);
    const char * (*i1_layout)(void);
    const char * (*cpu_variant)(void);
    int (*set_attention)(int on);  // veclut's attention kernel on (1) or upstream's (0); returns the old
    long (*attention_runs)(void);

    ggml_backend_t init() const { return ggml_backend_dev_init(dev, nullptr); }
    ggml_backend_buffer_type_t buffer_type() const { return ggml_backend_dev_buffer_type(dev); }  // ggml's plain CPU buffer
};

// The CPU backend: the one linked in, or else the one ggml_backend_load_all() loads (of the
// ggml-cpu-<variant> libraries beside the program, the best-scoring one this CPU runs). Without a
// CPU backend, or with one built without veclut, `program` stops with one sentence (exit 1).
const backend & cpu(const char * program);

}  // namespace veclut_cpu
