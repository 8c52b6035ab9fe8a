// SparseConv for ONNX Runtime's CPU execution provider.
#pragma once
#include <onnxruntime_cxx_api.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/conv_params.h"
#include "kernels/cpu_isa.h"
#include "kernels/jit_tiles.h"
#include "kernels/cpu_weights.h"
#include "ort/sparse_conv_op.h"

namespace onnx_sparsify {

// One instance per node. Everything is validated and packed in the constructor; Compute only
// reads members, so one instance safely serves concurrent Run calls.
class SparseConvCpuKernel {
 public:
  SparseConvCpuKernel(const OrtApi& api, const OrtKernelInfo* info, std::string node_name);
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void Compute(OrtKernelContext* context) const;

  const OrtApi& api_;
  std::string node_name_;
  CpuIsa isa_ = CpuIsa::kBaseline;  // chosen at creation (ONNX_SPARSIFY_CPU_ISA or the best)
  ConvAttributes attrs_;
  CpuWeights weights_;
  bool has_bias_input_ = false;
  std::optional<std::vector<float>> constant_bias_;
  // Nonzero offsets for the input shape the model declares, computed once (see TapOffsets).
  std::optional<PhaseLayout> planned_layout_;
  std::vector<int64_t> planned_offsets_;
  std::unique_ptr<JitTiles> jit_;  // code for planned_offsets_ (kAvx512Jit only; null where none)
  std::unique_ptr<Ort::MemoryInfo> cpu_memory_info_;
};

struct SparseConvCpuOp : SparseConvOpBase<SparseConvCpuOp, SparseConvCpuKernel> {
  const char* GetExecutionProviderType() const { return "CPUExecutionProvider"; }
};

}  // namespace onnx_sparsify
