// The CPU kernel's instruction sets. The kernel has one variant of each hot function per
// instruction set (sparse_conv_cpu.cc) and picks one per kernel instance: the best this CPU
// runs, or the one the environment variable ONNX_SPARSIFY_CPU_ISA names, so that tests can run
// every variant on any machine that supports it. "avx512f-jit" is AVX-512 with code generated
// for each layer's weight (jit_tiles.h) where the layer allows it, the AVX-512 variant elsewhere.
#pragma once
#include <string>

namespace onnx_sparsify {

#if defined(__x86_64__) && defined(__GNUC__)
#define ONNX_SPARSIFY_X86 1
#endif

enum class CpuIsa { kBaseline, kAvx2, kAvx512, kAvx512Jit };

// Every instruction set, best first.
inline constexpr CpuIsa kCpuIsasBestFirst[] = {CpuIsa::kAvx512Jit, CpuIsa::kAvx512, CpuIsa::kAvx2, CpuIsa::kBaseline};

inline constexpr const char* kCpuIsaEnvironmentVariable = "ONNX_SPARSIFY_CPU_ISA";

// "baseline", "avx2" (AVX2 with FMA), "avx512f" or "avx512f-jit".
const char* CpuIsaName(CpuIsa isa);

// Whether this CPU runs `isa`.
bool CpuSupports(CpuIsa isa);

// The best instruction set this CPU runs.
CpuIsa BestCpuIsa();

// The instruction set called `name`; throws InvalidArgument, quoting `source` (where the name
// came from), when it names an unknown set or one this CPU lacks.
CpuIsa CpuIsaNamed(const std::string& name, const std::string& source);

// The instruction set ONNX_SPARSIFY_CPU_ISA names, or BestCpuIsa() when it is unset or empty.
// Throws InvalidArgument when it names an unknown set or one this CPU lacks.
CpuIsa SelectedCpuIsa();

}  // namespace onnx_sparsify
