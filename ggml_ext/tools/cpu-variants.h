// The ggml-cpu-<variant> libraries beside the one ggml loaded, each with the score it gives this CPU
// (its ggml_backend_score(): 0 when the CPU lacks an extension the variant was compiled for, else
// higher the more it uses). ggml_backend_load_all() keeps the highest: veclut-info shows why.
#pragma once

#include <string>
#include <vector>

namespace veclut_cpu {

struct variant_score {
    std::string name;  // "haswell" for libggml-cpu-haswell.so
    int score;
};

// `inside` is any function of the loaded CPU library; best first. Empty for a build with a single
// ggml-cpu library (nothing beside it to choose from) and where the platform cannot say.
std::vector<variant_score> variant_scores(const void * inside);

}  // namespace veclut_cpu
