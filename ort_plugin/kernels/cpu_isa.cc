#include "kernels/cpu_isa.h"

#include <cstdlib>
#include <string>

#include "kernels/errors.h"
#include "kernels/jit_tiles.h"

namespace onnx_sparsify {

const char* CpuIsaName(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512Jit: return "avx512f-jit";
    case CpuIsa::kAvx512: return "avx512f";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kBaseline: return "baseline";
  }
  return "baseline";
}

bool CpuSupports(CpuIsa isa) {
#ifdef ONNX_SPARSIFY_X86
  __builtin_cpu_init();
  switch (isa) {
    case CpuIsa::kAvx512Jit: return JitTiles::Available();
    case CpuIsa::kAvx512: return __builtin_cpu_supports("avx512f");
    case CpuIsa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CpuIsa::kBaseline: return true;
  }
  return false;
#else
  return isa == CpuIsa::kBaseline;
#endif
}

CpuIsa BestCpuIsa() {
  for (CpuIsa isa : kCpuIsasBestFirst) {
    if (CpuSupports(isa)) return isa;
  }
  return CpuIsa::kBaseline;
}

CpuIsa CpuIsaNamed(const std::string& name, const std::string& source) {
  for (CpuIsa isa : kCpuIsasBestFirst) {
    if (name != CpuIsaName(isa)) continue;
    if (!CpuSupports(isa)) throw InvalidArgument(source + ": this CPU does not support " + name);
    return isa;
  }
  throw InvalidArgument(source + " is not an instruction set (expected avx512f-jit, avx512f, avx2 or baseline)");
}

CpuIsa SelectedCpuIsa() {
  const char* value = std::getenv(kCpuIsaEnvironmentVariable);
  if (!value || !*value) return BestCpuIsa();
  return CpuIsaNamed(value, std::string(kCpuIsaEnvironmentVariable) + "=" + value);
}

}  // namespace onnx_sparsify
