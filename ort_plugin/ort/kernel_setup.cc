#include "ort/kernel_setup.h"

#include <cstring>

#include "kernels/contract.h"
#include "kernels/errors.h"
#include "ort/ort_attributes.h"

namespace onnx_sparsify {
namespace {

const char* InputName(size_t index) {
  static const char* kNames[kNumInputs] = {"X", "W_values", "W_col_indices", "W_row_ptr", "B"};
  return index < kNumInputs ? kNames[index] : "?";
}

}  // namespace

const float* ResidualInput(Ort::KernelContext& ctx, const std::vector<int64_t>& output_shape) {
  if (ctx.GetInputCount() <= kInputResidual) return nullptr;
  auto z = ctx.GetInput(kInputResidual);
  if (!z) return nullptr;
  const std::vector<int64_t> shape = z.GetTensorTypeAndShapeInfo().GetShape();
  if (shape != output_shape) {
    auto text = [](const std::vector<int64_t>& v) {
      std::string s;
      for (int64_t d : v) s += (s.empty() ? "" : ", ") + std::to_string(d);
      return "[" + s + "]";
    };
    throw InvalidArgument("Z (the residual input) has shape " + text(shape) + "; it must have the output's shape " +
                          text(output_shape));
  }
  return z.GetTensorData<float>();
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

int64_t ConstantInput::size() const {
  int64_t n = 1;
  for (int64_t d : shape) n = CheckedMul(n, d, "constant input");
  return n;
}

ConstantInput GetConstantInput(const OrtApi& api, const OrtKernelInfo* info, size_t index, const char* name,
                               ConstantRank rank) {
  int is_constant = 0;
  const OrtValue* value = nullptr;
  ThrowIfError(api, api.KernelInfoGetConstantInput_tensor(info, index, &is_constant, &value),
               std::string("input ") + name);
  if (!is_constant || !value) {
    throw InvalidArgument(std::string("input ") + name +
                          " must be a constant initializer; it is read once when the kernel is created");
  }
  Ort::ConstValue v(value);
  auto info_ts = v.GetTensorTypeAndShapeInfo();
  ConstantInput c;
  c.type = info_ts.GetElementType();
  c.shape = info_ts.GetShape();
  if (c.shape.size() > 1 || (rank == ConstantRank::kOneD && c.shape.size() != 1)) {
    throw InvalidArgument(std::string("input ") + name +
                          (rank == ConstantRank::kOneD ? " must be 1-D" : " must be a scalar or 1-D") + ", got rank " +
                          std::to_string(c.shape.size()));
  }
  c.data = v.GetTensorRawData();
  return c;
}

namespace {

template <typename Index>
CsrView<Index> MakeCsrView(const float* values, int64_t num_values, const ConstantInput& cols,
                           const ConstantInput& row_ptr) {
  return CsrView<Index>{values, num_values, static_cast<const Index*>(cols.data), cols.size(),
                        static_cast<const Index*>(row_ptr.data), row_ptr.size()};
}

}  // namespace

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

SparseWeights PackCsr(const ConvAttributes& attrs, const std::vector<int64_t>& x_shape, const float* values,
                      int64_t num_values, const ConstantInput& cols, const ConstantInput& row_ptr) {
  if (cols.type != row_ptr.type) {
    throw InvalidArgument("W_col_indices and W_row_ptr must have the same integer type (both int32 or both int64)");
  }
  int64_t in_channels = x_shape.size() >= 2 && x_shape[1] > 0 ? x_shape[1] : -1;
  if (in_channels > 0 && in_channels % attrs.group != 0) {
    throw InvalidArgument("input channels " + std::to_string(in_channels) + " are not divisible by group " +
                          std::to_string(attrs.group));
  }
  if (attrs.in_channels_per_group > 0) {
    const int64_t expected = attrs.in_channels();
    if (in_channels > 0 && in_channels != expected) {
      throw InvalidArgument("input X has " + std::to_string(in_channels) + " channels but the weight expects " +
                            std::to_string(expected) + " (group x in_channels_per_group)");
    }
    in_channels = expected;  // every column is checked against the weight's own shape
  }
  SparseWeights weights;
  if (cols.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32) {
    weights = SparseWeights::Pack(MakeCsrView<int32_t>(values, num_values, cols, row_ptr), attrs, in_channels);
  } else if (cols.type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) {
    weights = SparseWeights::Pack(MakeCsrView<int64_t>(values, num_values, cols, row_ptr), attrs, in_channels);
  } else {
    throw InvalidArgument("W_col_indices and W_row_ptr must be int32 or int64");
  }
  attrs.CheckOutputChannels(weights.out_channels());
  return weights;
}

NodeSetup ReadNode(const OrtApi& api, const OrtKernelInfo* info) {
  NodeSetup setup;
  setup.attrs = ConvAttributes::Parse(KernelInfoAttributes(api, info));
  const ConstantInput values = GetConstantInput(api, info, kInputValues, InputName(kInputValues));
  const ConstantInput cols = GetConstantInput(api, info, kInputColIndices, InputName(kInputColIndices));
  const ConstantInput row_ptr = GetConstantInput(api, info, kInputRowPtr, InputName(kInputRowPtr));
  if (values.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) throw InvalidArgument("W_values must be float32");
  setup.x_shape = DeclaredInputShape(api, info);
  setup.weights = PackCsr(setup.attrs, setup.x_shape, static_cast<const float*>(values.data), values.size(), cols,
                          row_ptr);

  setup.has_bias = InputPresent(api, info, kInputBias);
  if (setup.has_bias) {
    int is_constant = 0;
    const OrtValue* value = nullptr;
    ThrowIfError(api, api.KernelInfoGetConstantInput_tensor(info, kInputBias, &is_constant, &value), "input B");
    if (is_constant && value) {
      const ConstantInput bias = GetConstantInput(api, info, kInputBias, InputName(kInputBias));
      if (bias.type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT || bias.size() != setup.weights.out_channels()) {
        throw InvalidArgument("B must be float32 of shape [" + std::to_string(setup.weights.out_channels()) + "]");
      }
      const float* b = static_cast<const float*>(bias.data);
      setup.constant_bias.emplace(b, b + bias.size());
    }
  }
  return setup;
}

}  // namespace onnx_sparsify
