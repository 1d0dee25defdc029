// veclut-info: what the ggml library in this build offers, as ggml itself reports it:
// the CPU device's extra buffer types (veclut's must be among them), the CPU features the ggml-cpu library was compiled for,
// the features this CPU has, and which of veclut's kernel sets runs and why.
// Tests and `veclut doctor` read its output, so it is line-oriented: "key: value".

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "veclut.h"

#include <cstdio>
#include <cstring>

int main() {
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (cpu == nullptr) {
        fprintf(stderr, "veclut-info: no CPU device in this ggml build\n");
        return 1;
    }
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(cpu);
    auto get_extra = (ggml_backend_dev_get_extra_bufts_t)
        ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts");

    bool found = false;
    if (get_extra != nullptr) {
        for (ggml_backend_buffer_type_t * buft = get_extra(cpu); buft && *buft; ++buft) {
            const char * name = ggml_backend_buft_name(*buft);
            printf("extra_buffer_type: %s\n", name);
            found = found || strcmp(name, VECLUT_BUFFER_TYPE_NAME) == 0;
        }
    }
    printf("veclut_registered: %s\n", found ? "yes" : "no");
    printf("cpu_features: %s\n", veclut_cpu_features());
    printf("kernel_sets_compiled: %s\n", veclut_kernel_sets_compiled());
    printf("kernel_sets: %s\n", veclut_kernel_sets());
    printf("active_kernel_set: %s\n", veclut_active_kernel_set());
    printf("kernel_choice: %s\n", veclut_kernel_choice());

    struct { const char * name; int (*has)(void); } features[] = {
        {"avx2", ggml_cpu_has_avx2},           {"avx512", ggml_cpu_has_avx512},
        {"avx512_vbmi", ggml_cpu_has_avx512_vbmi}, {"avx512_vnni", ggml_cpu_has_avx512_vnni},
        {"neon", ggml_cpu_has_neon},           {"dotprod", ggml_cpu_has_dotprod},
    };
    for (const auto & f : features) {
        printf("build_feature_%s: %d\n", f.name, f.has());
    }
    return found ? 0 : 2;
}
