#include "ort/cpu_ops.h"

#include <algorithm>
#include <cstring>

#include "kernels/contract.h"
#include "kernels/errors.h"
#include "kernels/sparse_conv_cpu.h"
#include "ort/ort_attributes.h"
#include "ort/ort_status.h"
#include "ort/shape_inference.h"

namespace onnx_sparsify {
namespace {

const char* InputName(size_t index) {
  static const char* kNames[kNumInputs] = {"X", "W_values", "W_col_indices", "W_row_ptr", "B"};
  return index < kNumInputs ? kNames[index] : "?";
}

std::string NodeName(const OrtApi& api, const OrtKernelInfo* info) {
  size_t size = 0;
  if (OrtStatus* s = api.KernelInfo_GetNodeName(info, nullptr, &size)) api.ReleaseStatus(s);
  std::string name(size, '\0');
  if (size == 0) return "";
  if (OrtStatus* s = api.KernelInfo_GetNodeName(info, name.data(), &size)) {
    api.ReleaseStatus(s);
    return "";
  }
  name.resize(std::strlen(name.c_str()));
  return name;
}

// A constant input read at kernel creation: its type, shape and data (owned by ORT).
struct ConstantInput {
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  int64_t size() const { return shape.empty() ? 1 : shape[0]; }
};

ConstantInput GetConstantInput(const OrtApi& api, const OrtKernelInfo* info, size_t index) {
  int is_constant = 0;
  const OrtValue* value = nullptr;
  ThrowIfError(api, api.KernelInfoGetConstantInput_tensor(info, index, &is_constant, &value),
               std::string("input ") + InputName(index));
  if (!is_constant || !value) {
    throw InvalidArgument(std::string("input ") + InputName(index) +
                          " must be a constant initializer; the CSR weight is packed once when the kernel is created");
  }
  Ort::ConstValue v(value);
  auto info_ts = v.GetTensorTypeAndShapeInfo();
  ConstantInput c;
  c.type = info_ts.GetElementType();
  c.shape = info_ts.GetShape();
  if (c.shape.size() != 1) {
    throw InvalidArgument(std::string("input ") + InputName(index) + " must be 1-D, got rank " +
                          std::to_string(c.shape.size()));
  }
  c.data = v.GetTensorRawData();
  return c;
}

template <typename Index>
CsrView<Index> MakeCsrView(const ConstantInput& values, const ConstantInput& cols, const ConstantInput& row_ptr) {
  return CsrView<Index>{static_cast<const float*>(values.data), values.size(),
                        static_cast<const Index*>(cols.data),   cols.size(),
                        static_cast<const Index*>(row_ptr.data), row_ptr.size()};
}

// X's shape as the model declares it (-1 for unknown sizes), or empty when unknown.
std::vector<int64_t> DeclaredInputShape(const OrtApi& api, const OrtKernelInfo* info) {
  OrtTypeInfo* type_info = nullptr;
  if (OrtStatus* s = api.KernelInfo_GetInputTypeInfo(info, 0, &type_info)) {
    api.ReleaseStatus(s);
    return {};
  }
  Ort::TypeInfo owned(type_info);
  if (owned.GetONNXType() != ONNX_TYPE_TENSOR) return {};
  return owned.GetTensorTypeAndShapeInfo().GetShape();
}

bool InputPresent(const OrtApi& api, const OrtKernelInfo* info, size_t index) {
  size_t count = 0;
  ThrowIfError(api, api.KernelInfo_GetInputCount(info, &count), "input count");
  if (index >= count) return false;
  size_t size = 0;
  ThrowIfError(api, api.KernelInfo_GetInputName(info, index, nullptr, &size), "input name");
  return size > 1;  // size counts the terminator; an absent optional input has an empty name
}

void ParallelTrampoline(void* data, size_t i) {
  (*static_cast<const std::function<void(int64_t)>*>(data))(static_cast<int64_t>(i));
}

}  // namespace

SparseConvCpuKernel::SparseConvCpuKernel(const OrtApi& api, const OrtKernelInfo* info, std::string node_name)
    : api_(api), node_name_(std::move(node_name)) {
  cpu_memory_info_ = std::make_unique<Ort::MemoryInfo>(Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault));
  attrs_ = ConvAttributes::Parse(KernelInfoAttributes(api, info));
  const ConstantInput values = GetConstantInput(api, info, kInputValues);
  const ConstantInput cols = GetConstantInput(api, info, kInputColIndices);
  const ConstantInput row_ptr = GetConstantInput(api, info, kInputRowPtr);
  if (values.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) throw InvalidArgument("W_values must be float32");
  if (cols.type != row_ptr.type) {
    throw InvalidArgument("W_col_indices and W_row_ptr must have the same integer type (both int32 or both int64)");
  }
  const std::vector<int64_t> x_shape = DeclaredInputShape(api, info);
  const int64_t in_channels = x_shape.size() >= 2 && x_shape[1] > 0 ? x_shape[1] : -1;
  if (in_channels > 0 && in_channels % attrs_.group != 0) {
    throw InvalidArgument("input channels " + std::to_string(in_channels) + " are not divisible by group " +
                          std::to_string(attrs_.group));
  }
  if (cols.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32) {
    weights_ = SparseWeights::Pack(MakeCsrView<int32_t>(values, cols, row_ptr), attrs_, in_channels);
  } else if (cols.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) {
    weights_ = SparseWeights::Pack(MakeCsrView<int64_t>(values, cols, row_ptr), attrs_, in_channels);
  } else {
    throw InvalidArgument("W_col_indices and W_row_ptr must be int32 or int64");
  }

  // With the whole input shape declared, the nonzeros' offsets are computed here, not per call.
  if (!x_shape.empty() && std::all_of(x_shape.begin(), x_shape.end(), [](int64_t d) { return d >= 0; })) {
    const ConvGeometry geometry = PrepareCall(attrs_, weights_, x_shape);
    planned_layout_ = geometry.layout;
    planned_offsets_ = TapOffsets(weights_, geometry.layout);
  }

  has_bias_input_ = InputPresent(api, info, kInputBias);
  if (has_bias_input_) {
    int is_constant = 0;
    const OrtValue* value = nullptr;
    ThrowIfError(api, api.KernelInfoGetConstantInput_tensor(info, kInputBias, &is_constant, &value), "input B");
    if (is_constant && value) {
      const ConstantInput bias = GetConstantInput(api, info, kInputBias);
      if (bias.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || bias.size() != weights_.out_channels()) {
        throw InvalidArgument("B must be float32 of shape [" + std::to_string(weights_.out_channels()) + "]");
      }
      const float* b = static_cast<const float*>(bias.data);
      constant_bias_.emplace(b, b + bias.size());
    }
  }
}

void SparseConvCpuKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  auto x = ctx.GetInput(kInputX);
  const ConvGeometry geometry = PrepareCall(attrs_, weights_, x.GetTensorTypeAndShapeInfo().GetShape());

  const float* bias = constant_bias_ ? constant_bias_->data() : nullptr;
  if (has_bias_input_ && !constant_bias_ && ctx.GetInputCount() > kInputBias) {
    auto b = ctx.GetInput(kInputBias);
    if (b) {
      auto info = b.GetTensorTypeAndShapeInfo();
      const auto shape = info.GetShape();
      if (shape.size() != 1 || shape[0] != weights_.out_channels()) {
        throw InvalidArgument("B must have shape [" + std::to_string(weights_.out_channels()) + "]");
      }
      bias = b.GetTensorData<float>();
    }
  }

  auto y = ctx.GetOutput(0, geometry.OutputShape());
  // Every task its own batch: with num_batch 0, ORT runs the whole loop on one thread.
  const ParallelFor parallel_for = [&](int64_t total, const std::function<void(int64_t)>& body) {
    if (total <= 0) return;
    ThrowIfError(api_,
                 api_.KernelContext_ParallelFor(context, ParallelTrampoline, static_cast<size_t>(total), static_cast<size_t>(total),
                                                const_cast<std::function<void(int64_t)>*>(&body)),
                 "thread pool");
  };
  // Scratch from ORT's CPU arena, which keeps its memory between calls.
  OrtAllocator* allocator = ctx.GetAllocator(*static_cast<const OrtMemoryInfo*>(*cpu_memory_info_));
  if (!allocator) throw InvalidArgument("no CPU allocator");
  std::vector<void*> blocks;
  struct Release {
    OrtAllocator* allocator;
    std::vector<void*>& blocks;
    ~Release() {
      for (void* p : blocks) allocator->Free(allocator, p);
    }
  } release{allocator, blocks};
  const ScratchAllocator scratch = [&](size_t n) {
    void* p = allocator->Alloc(allocator, n * sizeof(float));
    if (!p) throw std::bad_alloc();
    blocks.push_back(p);
    return static_cast<float*>(p);
  };
  const bool planned = planned_layout_ && SameOffsets(*planned_layout_, geometry.layout);
  SparseConvCpu(attrs_, weights_, bias, geometry, x.GetTensorData<float>(), y.GetTensorMutableData<float>(),
                parallel_for, scratch, planned ? &planned_offsets_ : nullptr);
}

OrtStatusPtr SparseConvCpuKernel::ComputeV2(OrtKernelContext* context) const {
  return StatusFromExceptions(api_, "SparseConv node '" + node_name_ + "'", [&] { Compute(context); });
}

SparseConvCpuOp::SparseConvCpuOp() { InferOutputShapeFn = InferSparseConvShape; }

OrtStatusPtr SparseConvCpuOp::CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** op_kernel) const {
  const std::string node = NodeName(api, info);
  return StatusFromExceptions(api, "SparseConv node '" + node + "'",
                              [&] { *op_kernel = new SparseConvCpuKernel(api, info, node); });
}

const char* SparseConvCpuOp::GetName() const { return kOpType; }

size_t SparseConvCpuOp::GetInputTypeCount() const { return kNumInputs; }

ONNXTensorElementDataType SparseConvCpuOp::GetInputType(size_t index) const {
  // Index inputs accept int32 or int64 (checked when the kernel is created).
  return index == kInputColIndices || index == kInputRowPtr ? ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED
                                                            : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
}

OrtCustomOpInputOutputCharacteristic SparseConvCpuOp::GetInputCharacteristic(size_t index) const {
  return index == kInputBias ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
}

}  // namespace onnx_sparsify
