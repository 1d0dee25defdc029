// bench-veclut: GEMM speed of veclut's kernels against upstream's, measured in one run.
//
// For every shape (M x K) x token count N x thread count, and every type, it times y = W x on
// ggml's CPU backend, weights streamed from DRAM (gemm-timing.h, shared with bench-peer-gemm).
// Every configuration measures all types back to back. Types:
//   I2_V, I1_V        new types in veclut's buffer (repacked, veclut's kernels)
//   TQ2_0+, TQ1_0+    upstream types in veclut's buffer (accelerated by veclut)
//   Q2_V, Q2_0+       the 2-bit type and upstream Q2_0 in veclut's buffer
//   Q1_0+             upstream's 1-bit Q1_0 in veclut's buffer (run as the 2-bit layout)
//   TQ2_0, TQ1_0, Q4_0, Q2_0, Q1_0, Q2_K   upstream types in a plain CPU buffer (upstream's own kernels)
// Output: one JSON line per measurement, GOPS = 2*M*K*N / time, and ratios of each new type
// against its upstream counterpart (I2_V and TQ2_0+ vs TQ2_0, I1_V and TQ1_0+ vs TQ1_0, Q1_0+ vs Q1_0).
// --bandwidth instead measures the machine's read bandwidth with each thread count (the
// roofline of a memory-bound decode): every thread sums its share of a 1 GiB buffer.

#include "ggml.h"
#include "ggml-backend.h"
#include "gemm-timing.h"
#include "../tools/cpu-backend.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct named_type {
    const char * name;
    ggml_type    type;
    bool         veclut_buffer;
    const char * baseline;  // the upstream type it is compared with ("" if none)
};

const named_type TYPES[] = {
    {"I2_V", GGML_TYPE_I2_V, true, "TQ2_0"},
    {"I1_V", GGML_TYPE_I1_V, true, "TQ1_0"},
    {"TQ2_0+", GGML_TYPE_TQ2_0, true, "TQ2_0"},
    {"TQ1_0+", GGML_TYPE_TQ1_0, true, "TQ1_0"},
    {"TQ2_0", GGML_TYPE_TQ2_0, false, ""},
    {"TQ1_0", GGML_TYPE_TQ1_0, false, ""},
    {"Q4_0", GGML_TYPE_Q4_0, false, ""},
    {"Q2_0", GGML_TYPE_Q2_0, false, ""},
    {"Q2_V", GGML_TYPE_Q2_V, true, "Q2_0"},
    {"Q2_0+", GGML_TYPE_Q2_0, true, "Q2_0"},
    {"Q2_K", GGML_TYPE_Q2_K, false, ""},
    {"Q1_0", GGML_TYPE_Q1_0, false, ""},
    {"Q1_0+", GGML_TYPE_Q1_0, true, "Q1_0"},
};

gemm_timing::type_spec resolve(const std::string & name) {
    for (const auto & t : TYPES) {
        if (name == t.name) {
            const veclut_cpu::backend & cpu = veclut_cpu::cpu("bench-veclut");
            return {t.type, t.veclut_buffer ? cpu.veclut_buffer_type() : cpu.buffer_type(), t.baseline};
        }
    }
    return {GGML_TYPE_COUNT, nullptr, ""};
}

void usage(const char * why) {
    fprintf(stderr, "bench-veclut: %s\n"
        "usage: bench-veclut [--shapes MxK,...] [--tokens N,...] [--threads T,...]\n"
        "                    [--types I2_V,I1_V,TQ2_0+,TQ1_0+,TQ2_0,TQ1_0,Q4_0,Q2_0,Q2_V,Q2_0+,Q2_K,Q1_0,Q1_0+] [--reps R]\n"
        "                    [--min-mib MiB] [--min-seconds S] [--seed S] [--cpu-time]\n"
        "       bench-veclut --bandwidth [--threads T,...] [--reps R]\n"
        "--cpu-time: time by CPU time instead of wall time (A/B comparisons while other programs run).\n"
        "Environment: VECLUT_KERNELS, VECLUT_LUT_MIN_N, VECLUT_TILE_KB, VECLUT_ROW_CHUNK as for the library.\n", why);
    exit(2);
}

}  // namespace

int main(int argc, char ** argv) {
    gemm_timing::program = "bench-veclut";
    gemm_timing::options o = gemm_timing::parse(argc, argv, resolve, usage);
    if (o.bandwidth) {
        gemm_timing::print_bandwidth(o);
        return 0;
    }
    if (o.types.empty()) o.types = {"I2_V", "I1_V", "TQ2_0", "TQ1_0", "Q4_0", "Q2_0"};
    const veclut_cpu::backend & cpu = veclut_cpu::cpu("bench-veclut");  // ggml's registry: any build profile
    fprintf(stderr, "bench-veclut: kernel set %s (compiled: %s)\n", cpu.active_kernel_set(), cpu.kernel_sets());
    gemm_timing::run(o, resolve, {[&] { return cpu.init(); }, cpu.set_n_threads});
    return 0;
}
