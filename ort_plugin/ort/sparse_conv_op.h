// The SparseConv custom-op definition shared by every execution provider: name, inputs and
// outputs, shape inference and kernel creation. Each provider adds its kernel class and name.
#pragma once
#include <onnxruntime_cxx_api.h>

#include <string>

#include "kernels/contract.h"
#include "ort/kernel_setup.h"
#include "ort/ort_status.h"
#include "ort/shape_inference.h"

namespace onnx_sparsify {

template <typename TOp, typename TKernel>
struct SparseConvOpBase : Ort::CustomOpBase<TOp, TKernel, /*WithStatus=*/true> {
  SparseConvOpBase() { this->InferOutputShapeFn = InferSparseConvShape; }

  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const {
    const std::string node = NodeName(api, info);
    return StatusFromExceptions(api, "SparseConv node '" + node + "'",
                                [&] { *op_kernel = new TKernel(api, info, node); });
  }
  const char* GetName() const { return kOpType; }
  size_t GetInputTypeCount() const { return kNumInputs; }
  ONNXTensorElementDataType GetInputType(size_t index) const {
    // Index inputs accept int32 or int64 (checked when the kernel is created).
    return index == kInputColIndices || index == kInputRowPtr ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED
                                                              : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index == kInputBias || index == kInputResidual ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace onnx_sparsify
