// Scores of the ggml-cpu variant libraries (cpu-variants.h): each is opened and asked, as ggml's
// loader does (ggml_backend_load_best); they stay loaded only while asked.

#include "cpu-variants.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#if defined(__unix__) || defined(__APPLE__)
#include <dlfcn.h>
#endif

namespace veclut_cpu {

std::vector<variant_score> variant_scores(const void * inside) {
    std::vector<variant_score> out;
#if defined(__unix__) || defined(__APPLE__)
    Dl_info self;
    if (dladdr(inside, &self) == 0 || self.dli_fname == nullptr) {
        return out;
    }
    namespace fs = std::filesystem;
    const std::string prefix = "libggml-cpu-", suffix = ".so";
    std::error_code ec;
    for (const fs::directory_entry & e : fs::directory_iterator(fs::path(self.dli_fname).parent_path(), ec)) {
        const std::string file = e.path().filename().string();
        if (file.rfind(prefix, 0) != 0 || e.path().extension() != suffix) {
            continue;
        }
        void * lib = dlopen(e.path().c_str(), RTLD_NOW | RTLD_LOCAL);
        if (lib == nullptr) {
            continue;
        }
        if (auto score = (int (*)(void)) dlsym(lib, "ggml_backend_score")) {
            out.push_back({file.substr(prefix.size(), file.size() - prefix.size() - suffix.size()), score()});
        }
        dlclose(lib);
    }
    std::sort(out.begin(), out.end(), [](const variant_score & a, const variant_score & b) {
        return a.score != b.score ? a.score > b.score : a.name < b.name;
    });
#else
    (void) inside;
#endif
    return out;
}

}  // namespace veclut_cpu
