#include "kernels/build_info.h"

#include "kernels/cpu_isa.h"

#ifndef ONNX_SPARSIFY_VERSION
#define ONNX_SPARSIFY_VERSION "0.0.0+unknown"
#endif
#ifndef ONNX_SPARSIFY_ORT_API
#error "ONNX_SPARSIFY_ORT_API comes from cmake/OnnxRuntimeHeaders.cmake"
#endif

namespace onnx_sparsify {

BuildInfo GetBuildInfo() {
#ifdef ONNX_SPARSIFY_WITH_CUDA
  constexpr bool kCuda = true;
#else
  constexpr bool kCuda = false;
#endif
  const CpuIsa isa = SelectedCpuIsa();
  return BuildInfo{ONNX_SPARSIFY_VERSION, ONNX_SPARSIFY_ORT_API, kCuda, CpuIsaName(isa),
                   CpuStrategyName(SelectedCpuStrategy(isa))};
}

}  // namespace onnx_sparsify
