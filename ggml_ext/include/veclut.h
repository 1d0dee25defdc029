// veclut: vector-LUT ternary and 2-bit matmul for ggml's CPU backend.
// The one header of the extension: type ids and the entry points ggml calls.
#pragma once

#include "ggml-backend.h"

#ifdef __cplusplus
extern "C" {
#endif

// The CPU extra buffer type that claims MUL_MAT / MUL_MAT_ID on veclut-accelerated weights
// and repacks them at load time. Registered by patches/0002 in ggml-cpu.cpp.
ggml_backend_buffer_type_t ggml_backend_veclut_buffer_type(void);

// Kernel sets of this build that this CPU can execute, best first, comma-separated
// ("avx512,avx2,scalar"), and the one in use (VECLUT_KERNELS=<name> picks another of them for
// the process); the sets compiled in, and one line saying why the active set was chosen.
const char * veclut_kernel_sets(void);
const char * veclut_active_kernel_set(void);
const char * veclut_kernel_sets_compiled(void);
const char * veclut_kernel_choice(void);
// The CPU features veclut checks, as this CPU reports them at run time ("avx2 fma f16c").
const char * veclut_cpu_features(void);
// How I1_V / TQ1_0 weights are held once loaded, and why: "i1 (5 trits per byte, ...)" or
// "i2 (4 trits per byte, ...)" (the kernel set's choice, or VECLUT_I1_COMPACT).
const char * veclut_i1_layout(void);

// k floats (a multiple of 256) to Q8_K blocks as the active kernel set quantizes activations:
// byte for byte ggml's quantize_row_q8_K for finite inputs (tests/test_q8_k.py).
void veclut_quantize_row_q8_K(const float * x, void * y, int64_t k);

// FLASH_ATTN_EXT with few query rows on an F16 KV cache runs veclut's kernel (attention.h) unless
// VECLUT_ATTENTION=0 is set or this is called with 0; returns the previous setting. The count of
// attention ops veclut has run so far (tests use both to compare with upstream's kernel).
int veclut_set_attention(int on);
long veclut_attention_runs(void);

// The CPU variant this library was compiled as ("haswell" in libggml-cpu-haswell.so, one of the
// libraries of a GGML_CPU_ALL_VARIANTS build, of which ggml loads the best this CPU runs), or ""
// in a build with a single ggml-cpu library.
const char * veclut_cpu_variant(void);

// The functions above by name, for programs that reach the CPU backend through ggml's registry
// (with GGML_BACKEND_DL it is a module ggml loads, so they cannot link it): the CPU backend's
// ggml_backend_reg_get_proc_address answers with this (patches/0002). nullptr for other names.
void * veclut_get_proc_address(const char * name);

// Name of the buffer type as ggml reports it (buffer lists, llama.cpp logs).
#define VECLUT_BUFFER_TYPE_NAME "CPU_VECLUT"

#ifdef __cplusplus
}
#endif
