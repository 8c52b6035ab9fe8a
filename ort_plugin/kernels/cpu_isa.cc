#include "kernels/cpu_isa.h"

#include <cstdlib>
#include <string>

#include "kernels/errors.h"
#include "kernels/jit_tiles.h"

namespace onnx_sparsify {
namespace {

template <class T, size_t N>
std::string Names(const T (&values)[N], const char* (*name)(T)) {
  std::string s;
  for (size_t i = 0; i < N; ++i) s += std::string(i == 0 ? "" : i + 1 == N ? " or " : ", ") + name(values[i]);
  return s;
}

}  // namespace

const char* CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512Vnni: return "avx512vnni";
    case CpuIsa::kAvx512: return "avx512f";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kBaseline: return "baseline";
  }
  return "baseline";
}

const char* CpuStrategyName(CpuStrategy strategy) {
  return strategy == CpuStrategy::kGenerated ? "generated" : "loops";
}

bool CpuSupports(CpuIsa isa) {
#ifdef ONNX_SPARSIFY_X86
  __builtin_cpu_init();
  switch (isa) {
    case CpuIsa::kAvx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vnni");
    case CpuIsa::kAvx512: return __builtin_cpu_supports("avx512f");
    case CpuIsa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuIsa::kBaseline: return true;
  }
  return false;
#else
  return isa == CpuIsa::kBaseline;
#endif
}

bool CpuSupports(CpuIsa isa, CpuStrategy strategy) {
  if (!CpuSupports(isa)) return false;
  return strategy == CpuStrategy::kLoops || JitTiles::Available(isa);
}

CpuIsa BestCpuIsa() {
  for (CpuIsa isa : kCpuIsasBestFirst) {
    if (CpuSupports(isa)) return isa;
  }
  return CpuIsa::kBaseline;
}

CpuStrategy BestCpuStrategy(CpuIsa isa) {
  const bool generated = CpuSupports(isa, CpuStrategy::kGenerated) && JitTiles::RunsByDefault(isa);
  return generated ? CpuStrategy::kGenerated : CpuStrategy::kLoops;
}

CpuIsa CpuIsaNamed(const std::string& name, const std::string& source) {
  for (CpuIsa isa : kCpuIsasBestFirst) {
    if (name != CpuIsaName(isa)) continue;
    if (!CpuSupports(isa)) throw InvalidArgument(source + ": this CPU does not support " + name);
    return isa;
  }
  if (name == "avx512f-jit") {
    throw InvalidArgument(source + ": avx512f-jit is now two settings: " + kCpuIsaEnvironmentVariable + "=avx512f and " +
                          kCpuStrategyEnvironmentVariable + "=generated");
  }
  throw InvalidArgument(source + " is not an instruction set (expected " + Names(kCpuIsasBestFirst, CpuIsaName) + ")");
}

CpuStrategy CpuStrategyNamed(const std::string& name, CpuIsa isa, const std::string& source) {
  for (CpuStrategy strategy : kCpuStrategiesBestFirst) {
    if (name != CpuStrategyName(strategy)) continue;
    if (!CpuSupports(isa, strategy)) {
      throw InvalidArgument(source + ": no generated code for " + CpuIsaName(isa) + " on this machine (" +
                            JitTiles::Unavailability(isa) + ")");
    }
    return strategy;
  }
  throw InvalidArgument(source + " is not a strategy (expected " + Names(kCpuStrategiesBestFirst, CpuStrategyName) +
                        ")");
}

CpuIsa SelectedCpuIsa() {
  const char* value = std::getenv(kCpuIsaEnvironmentVariable);
  if (!value || !*value) return BestCpuIsa();
  return CpuIsaNamed(value, std::string(kCpuIsaEnvironmentVariable) + "=" + value);
}

CpuStrategy SelectedCpuStrategy(CpuIsa isa) {
  const char* value = std::getenv(kCpuStrategyEnvironmentVariable);
  if (!value || !*value) return BestCpuStrategy(isa);
  return CpuStrategyNamed(value, isa, std::string(kCpuStrategyEnvironmentVariable) + "=" + value);
}

}  // namespace onnx_sparsify
