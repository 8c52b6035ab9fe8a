// SparseQLinearConv for ONNX Runtime's CPU execution provider (docs/operator.md), registered
// twice: uint8 X and Y, and int8 X and Y (one schema, the types merged by ORT).
#pragma once
#include <onnxruntime_cxx_api.h>

#include <memory>
#include <string>

#include "kernels/conv_params.h"
#include "kernels/cpu_plan.h"
#include "kernels/sparse_qconv_cpu.h"

namespace onnx_sparsify {

// One instance per node. Everything but X is a constant read, validated and packed here; Compute
// only reads members, so one instance serves concurrent Run calls.
class SparseQLinearConvCpuKernel {
 public:
  SparseQLinearConvCpuKernel(const OrtApi& api, const OrtKernelInfo* info, std::string node_name, bool is_signed);
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void Compute(OrtKernelContext* context) const;

  const OrtApi& api_;
  std::string node_name_;
  ConvAttributes attrs_;
  QuantizedWeights weights_;
  QuantizedPlan plan_;  // for the declared (or hinted) shape, with the instruction set chosen then
  std::unique_ptr<Ort::MemoryInfo> cpu_memory_info_;
};

template <bool Signed>
struct SparseQLinearConvCpuOp
    : Ort::CustomOpBase<SparseQLinearConvCpuOp<Signed>, SparseQLinearConvCpuKernel, /*WithStatus=*/true> {
  static constexpr ONNXTensorElementDataType kType =
      Signed ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;

  SparseQLinearConvCpuOp();
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const;
  const char* GetName() const;
  const char* GetExecutionProviderType() const { return "CPUExecutionProvider"; }
  size_t GetInputTypeCount() const;
  ONNXTensorElementDataType GetInputType(size_t index) const;
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const;
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return kType; }
};

extern template struct SparseQLinearConvCpuOp<false>;
extern template struct SparseQLinearConvCpuOp<true>;

}  // namespace onnx_sparsify
