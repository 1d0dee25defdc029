// bench-peer-gemm: bench-veclut's GEMM measurement (gemm-timing.h) compiled against a peer
// runtime's ggml (ik_llama.cpp's, built by `veclut bench --peer`), so the peer's kernels are
// timed with the same weights, rotation and timing as veclut's and the GOPS can be divided.
// Types are named as the peer's ggml names them (ggml_type_name: iq2_bn_r4, ...; any case) and
// live in a plain CPU buffer, as the peer's own programs load them.

#include "ggml.h"
#include "ggml-backend.h"
#if __has_include("ggml-cpu.h")
#include "ggml-cpu.h"  // newer trees declare the CPU backend here, older ones in ggml-backend.h
#endif
#include "gemm-timing.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

std::string lower(std::string s) {
    for (char & c : s) c = (char) std::tolower((unsigned char) c);
    return s;
}

gemm_timing::type_spec resolve(const std::string & name) {
    for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
        const char * known = ggml_type_name((ggml_type) t);
        if (known != nullptr && lower(known) == lower(name)) {
            return {(ggml_type) t, ggml_backend_cpu_buffer_type(), ""};
        }
    }
    return {GGML_TYPE_COUNT, nullptr, ""};
}

void usage(const char * why) {
    fprintf(stderr, "bench-peer-gemm: %s\n"
        "usage: bench-peer-gemm --types TYPE,... [--shapes MxK,...] [--tokens N,...] [--threads T,...]\n"
        "                       [--reps R] [--min-mib MiB] [--min-seconds S] [--seed S] [--cpu-time]\n"
        "TYPE: a ggml type name of this runtime (e.g. IQ2_BN_R4); the options mean what they mean for bench-veclut.\n", why);
    exit(2);
}

}  // namespace

int main(int argc, char ** argv) {
    gemm_timing::program = "bench-peer-gemm";
    const gemm_timing::options o = gemm_timing::parse(argc, argv, resolve, usage);
    if (o.types.empty()) usage("--types is required");
    gemm_timing::run(o, resolve, {ggml_backend_cpu_init, ggml_backend_cpu_set_n_threads});
    return 0;
}
