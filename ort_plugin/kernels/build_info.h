#pragma once
#include <string>

namespace onnx_sparsify {

struct BuildInfo {
  std::string version;       // package version
  int ort_api_version;       // ORT C API version the plugin is built against
  bool cuda_compiled;        // CUDA sources were compiled into this build
  std::string cpu_isa;       // instruction set the CPU kernel dispatches to on this machine
};

BuildInfo GetBuildInfo();

}  // namespace onnx_sparsify
