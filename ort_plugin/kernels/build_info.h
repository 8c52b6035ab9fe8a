#pragma once
#include <string>

namespace onnx_sparsify {

struct BuildInfo {
  std::string version;       // package version
  int ort_api_version;       // ORT C API version the plugin is built against
  bool cuda_compiled;        // CUDA sources were compiled into this build
  std::string cpu_isa;       // the CPU kernel's instruction set and strategy on this machine (cpu_isa.h):
  std::string cpu_strategy;  // the environment's choice, else the best
};

BuildInfo GetBuildInfo();

}  // namespace onnx_sparsify
