// veclut-info: what the ggml library in this build offers, as ggml itself reports it: the CPU
// device's extra buffer types (veclut's must be among them), which CPU library ggml loaded (in a
// build with one per CPU level) and why, the CPU features it was compiled for, the features this
// CPU has, and which of veclut's kernel sets runs and why.
// Tests and `veclut doctor` read its output, so it is line-oriented: "key: value".

#include "cpu-backend.h"
#include "cpu-variants.h"
#include "veclut.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace {

// ggml's name of a compiled-in feature -> veclut-info's build_feature_<key>
const struct { const char * ggml; const char * key; } BUILD_FEATURES[] = {
    {"AVX2", "avx2"}, {"AVX512", "avx512"}, {"AVX512_VBMI", "avx512_vbmi"}, {"AVX512_VNNI", "avx512_vnni"},
    {"NEON", "neon"}, {"DOTPROD", "dotprod"},
};

bool has(const ggml_backend_feature * features, const char * name) {
    for (const ggml_backend_feature * f = features; f->name != nullptr; ++f) {
        if (std::strcmp(f->name, name) == 0) {
            return std::strcmp(f->value, "0") != 0;
        }
    }
    return false;
}

void print_variant(const veclut_cpu::backend & cpu) {
    const auto scores = veclut_cpu::variant_scores((const void *) cpu.cpu_variant);
    const std::string variant = cpu.cpu_variant();
    printf("cpu_variant: %s\n", variant.empty() ? "none" : variant.c_str());
    if (variant.empty()) {
        printf("cpu_variant_choice: this build has one ggml-cpu library, compiled for the features below\n");
        return;
    }
    std::string list;
    for (const auto & s : scores) {
        list += (list.empty() ? "" : " ") + s.name + "=" + std::to_string(s.score);
    }
    printf("cpu_variant_scores: %s\n", list.c_str());
    printf("cpu_variant_choice: ggml loaded the highest-scoring ggml-cpu variant library; "
           "a score of 0 means this CPU lacks an extension the variant was compiled for\n");
}

}  // namespace

int main() {
    const veclut_cpu::backend & cpu = veclut_cpu::cpu("veclut-info");
    auto get_extra = (ggml_backend_dev_get_extra_bufts_t)
        ggml_backend_reg_get_proc_address(cpu.reg, "ggml_backend_dev_get_extra_bufts");

    bool found = false;
    if (get_extra != nullptr) {
        for (ggml_backend_buffer_type_t * buft = get_extra(cpu.dev); buft && *buft; ++buft) {
            const char * name = ggml_backend_buft_name(*buft);
            printf("extra_buffer_type: %s\n", name);
            found = found || strcmp(name, VECLUT_BUFFER_TYPE_NAME) == 0;
        }
    }
    printf("veclut_registered: %s\n", found ? "yes" : "no");
    print_variant(cpu);
    const ggml_backend_feature * features = cpu.get_features(cpu.reg);
    std::string names;
    for (const ggml_backend_feature * f = features; f->name != nullptr; ++f) {
        names += (names.empty() ? "" : " ") + std::string(f->name);
    }
    printf("build_features: %s\n", names.c_str());
    printf("cpu_features: %s\n", cpu.cpu_features());
    printf("kernel_sets_compiled: %s\n", cpu.kernel_sets_compiled());
    printf("kernel_sets: %s\n", cpu.kernel_sets());
    printf("active_kernel_set: %s\n", cpu.active_kernel_set());
    printf("kernel_choice: %s\n", cpu.kernel_choice());
    printf("i1_layout: %s\n", cpu.i1_layout());
    for (const auto & f : BUILD_FEATURES) {
        printf("build_feature_%s: %d\n", f.key, has(features, f.ggml) ? 1 : 0);
    }
    return found ? 0 : 2;
}
