#include "ort/qconv_ops.h"

#include <utility>
#include <vector>

#include "kernels/contract.h"
#include "kernels/errors.h"
#include "kernels/sparse_weights.h"
#include "ort/cpu_scratch.h"
#include "ort/kernel_setup.h"
#include "ort/ort_attributes.h"
#include "ort/ort_status.h"
#include "ort/shape_inference.h"

namespace onnx_sparsify {
namespace {

// A scalar constant (rank 0, or 1-D of one element) of `type`, as int32 or float.
template <typename T>
T Scalar(const OrtApi& api, const OrtKernelInfo* info, size_t index, const char* name,
         ONNXTensorElementDataType type) {
  const ConstantInput c = GetConstantInput(api, info, index, name, ConstantRank::kScalarOrOneD);
  if (c.type != type || c.size() != 1) {
    throw InvalidArgument(std::string(name) + " must be a scalar of X's type (or float for a scale)");
  }
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return static_cast<T>(*static_cast<const float*>(c.data));
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return static_cast<T>(*static_cast<const int8_t*>(c.data));
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return static_cast<T>(*static_cast<const uint8_t*>(c.data));
    default: throw InvalidArgument(std::string(name) + " has an unsupported type");
  }
}

}  // namespace

SparseQLinearConvCpuKernel::SparseQLinearConvCpuKernel(const OrtApi& api, const OrtKernelInfo* info,
                                                       std::string node_name, bool is_signed)
    : api_(api), node_name_(std::move(node_name)) {
  cpu_memory_info_ = std::make_unique<Ort::MemoryInfo>(Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault));
  attrs_ = ConvAttributes::Parse(KernelInfoAttributes(api, info));
  if (!attrs_.epilogue.empty()) throw InvalidArgument("SparseQLinearConv takes no activation");
  const ONNXTensorElementDataType x_type = is_signed ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8 : ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
  const ConstantInput values = GetConstantInput(api, info, kQInputValues, "W_values");
  if (values.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8) throw InvalidArgument("W_values must be int8");
  const int8_t* v = static_cast<const int8_t*>(values.data);
  const std::vector<float> float_values(v, v + values.size());  // exact: SparseWeights decodes floats
  const std::vector<int64_t> x_shape = DeclaredInputShape(api, info);
  CpuWeights weights(PackCsr(attrs_, x_shape, float_values.data(), values.size(),
                             GetConstantInput(api, info, kQInputColIndices, "W_col_indices"),
                             GetConstantInput(api, info, kQInputRowPtr, "W_row_ptr")),
                     attrs_);
  const ConstantInput w_scale = GetConstantInput(api, info, kQInputWScale, "w_scale", ConstantRank::kScalarOrOneD);
  if (w_scale.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
    throw InvalidArgument("w_scale must be a float scalar or 1-D");
  }
  const float* ws = static_cast<const float*>(w_scale.data);
  QuantParams quant = QuantParams::Make(
      is_signed, Scalar<float>(api, info, kQInputXScale, "x_scale", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT),
      Scalar<int32_t>(api, info, kQInputXZero, "x_zero_point", x_type), std::vector<float>(ws, ws + w_scale.size()),
      Scalar<float>(api, info, kQInputYScale, "y_scale", ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT),
      Scalar<int32_t>(api, info, kQInputYZero, "y_zero_point", x_type), weights.out_channels());
  std::vector<int32_t> bias;
  if (InputPresent(api, info, kQInputBias)) {
    const ConstantInput b = GetConstantInput(api, info, kQInputBias, "B");
    if (b.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32) throw InvalidArgument("B must be int32");
    const int32_t* data = static_cast<const int32_t*>(b.data);
    bias.assign(data, data + b.size());
  }
  weights_ = QuantizedWeights(std::move(weights), std::move(quant), std::move(bias));
  const CpuIsa isa = SelectedCpuIsa();
  const CpuStrategy strategy = SelectedCpuStrategy(isa);
  plan_ = PlanForNode(attrs_, x_shape, [&](const std::vector<int64_t>& shape) {
    return QuantizedPlan::Make(attrs_, weights_, isa, strategy, shape);
  });
}

void SparseQLinearConvCpuKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  auto x = ctx.GetInput(kQInputX);
  const ConvGeometry geometry = PrepareCall(attrs_, weights_.weights(), x.GetTensorTypeAndShapeInfo().GetShape());
  auto y = ctx.GetOutput(0, geometry.OutputShape());
  CpuScratch scratch(api_, ctx, *cpu_memory_info_);
  SparseQConvCpu(plan_, weights_, geometry, x.GetTensorRawData(), y.GetTensorMutableRawData(),
                 ParallelForOf(api_, context), scratch.allocator());
}

OrtStatusPtr SparseQLinearConvCpuKernel::ComputeV2(OrtKernelContext* context) const {
  return StatusFromExceptions(api_, "SparseQLinearConv node '" + node_name_ + "'", [&] { Compute(context); });
}

template <bool Signed>
SparseQLinearConvCpuOp<Signed>::SparseQLinearConvCpuOp() {
  this->InferOutputShapeFn = InferSparseQLinearConvShape;
}

template <bool Signed>
OrtStatusPtr SparseQLinearConvCpuOp<Signed>::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info,
                                                            void** op_kernel) const {
  const std::string node = NodeName(api, info);
  return StatusFromExceptions(api, "SparseQLinearConv node '" + node + "'",
                              [&] { *op_kernel = new SparseQLinearConvCpuKernel(api, info, node, Signed); });
}

template <bool Signed>
const char* SparseQLinearConvCpuOp<Signed>::GetName() const {
  return kQOpType;
}

template <bool Signed>
size_t SparseQLinearConvCpuOp<Signed>::GetInputTypeCount() const {
  return kQNumInputs;
}

template <bool Signed>
ONNXTensorElementDataType SparseQLinearConvCpuOp<Signed>::GetInputType(size_t index) const {
  switch (index) {
    case kQInputX:
    case kQInputXZero:
    case kQInputYZero: return kType;
    case kQInputValues: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
    case kQInputColIndices:
    case kQInputRowPtr: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;  // int32 or int64, checked at creation
    case kQInputBias: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    default: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;  // the scales
  }
}

template <bool Signed>
OrtCustomOpInputOutputCharacteristic SparseQLinearConvCpuOp<Signed>::GetInputCharacteristic(size_t index) const {
  return index == kQInputBias ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
}

template struct SparseQLinearConvCpuOp<false>;
template struct SparseQLinearConvCpuOp<true>;

}  // namespace onnx_sparsify
