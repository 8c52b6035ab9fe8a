// SparseConv for ONNX Runtime's CPU execution provider.
#pragma once
#include <onnxruntime_cxx_api.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/conv_params.h"
#include "kernels/cpu_plan.h"
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
  ConvAttributes attrs_;
  CpuWeights weights_;
  // Made at creation for the input shape the model declares (or the rewriter's hint), with the
  // instruction set and strategy chosen then (ONNX_SPARSIFY_CPU_ISA / _STRATEGY, or the best).
  CpuPlan plan_;
  bool has_bias_input_ = false;
  std::optional<std::vector<float>> constant_bias_;
  std::unique_ptr<Ort::MemoryInfo> cpu_memory_info_;
};

struct SparseConvCpuOp : SparseConvOpBase<SparseConvCpuOp, SparseConvCpuKernel> {
  const char* GetExecutionProviderType() const { return "CPUExecutionProvider"; }
};

}  // namespace onnx_sparsify
