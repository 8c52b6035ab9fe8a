// Run-time dispatch on the CPU's vector instruction set (GCC/Clang function multiversioning).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define ONNX_SPARSIFY_X86 1
// One clone per instruction set; the loader picks the best for the running CPU.
#define ONNX_SPARSIFY_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ONNX_SPARSIFY_CLONES
#endif
