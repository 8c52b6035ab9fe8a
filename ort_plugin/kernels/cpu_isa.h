// The CPU kernel's two settings, chosen per kernel instance:
// - the instruction set (CpuIsa): which variant of the hand-written loops runs (tiles_*.cc) and
//   which instructions generated code may use;
// - the strategy (CpuStrategy): code generated for each layer's weight at kernel creation
//   (jit_tiles.h), or the compiled loops alone.
// By default the best this CPU runs of each; ONNX_SPARSIFY_CPU_ISA and ONNX_SPARSIFY_CPU_STRATEGY
// (or the pybind module's arguments) force one, so that tests run every pair on any machine that
// supports it.
#pragma once
#include <string>

namespace onnx_sparsify {

#if defined(__x86_64__) && defined(__GNUC__)
#define ONNX_SPARSIFY_X86 1
#endif

// kAvx512Vnni is AVX-512 with VNNI's int8 dot products; the float kernels run as kAvx512 there.
enum class CpuIsa { kBaseline, kAvx2, kAvx512, kAvx512Vnni };
enum class CpuStrategy { kLoops, kGenerated };

// Every instruction set and strategy, best first.
inline constexpr CpuIsa kCpuIsasBestFirst[] = {CpuIsa::kAvx512Vnni, CpuIsa::kAvx512, CpuIsa::kAvx2, CpuIsa::kBaseline};
inline constexpr CpuStrategy kCpuStrategiesBestFirst[] = {CpuStrategy::kGenerated, CpuStrategy::kLoops};

inline constexpr const char* kCpuIsaEnvironmentVariable = "ONNX_SPARSIFY_CPU_ISA";
inline constexpr const char* kCpuStrategyEnvironmentVariable = "ONNX_SPARSIFY_CPU_STRATEGY";

// "baseline", "avx2" (AVX2 with FMA), "avx512f" or "avx512vnni"; "loops" or "generated".
const char* CpuIsaName(CpuIsa isa);
const char* CpuStrategyName(CpuStrategy strategy);

// Whether this CPU runs `isa`.
bool CpuSupports(CpuIsa isa);
// Whether this machine runs `strategy` with `isa`: generated code needs a code generator for the
// instruction set (jit_tiles.h) and executable memory.
bool CpuSupports(CpuIsa isa, CpuStrategy strategy);

// The best instruction set this CPU runs, and the best strategy for it.
CpuIsa BestCpuIsa();
CpuStrategy BestCpuStrategy(CpuIsa isa);

// The instruction set or strategy called `name`; throws InvalidArgument, quoting `source` (where
// the name came from), for an unknown name or one this machine does not run.
CpuIsa CpuIsaNamed(const std::string& name, const std::string& source);
CpuStrategy CpuStrategyNamed(const std::string& name, CpuIsa isa, const std::string& source);

// ONNX_SPARSIFY_CPU_ISA's instruction set, or BestCpuIsa() when it is unset or empty; then
// ONNX_SPARSIFY_CPU_STRATEGY's strategy for it, or BestCpuStrategy(isa). Throw InvalidArgument
// as CpuIsaNamed and CpuStrategyNamed do.
CpuIsa SelectedCpuIsa();
CpuStrategy SelectedCpuStrategy(CpuIsa isa);

}  // namespace onnx_sparsify
