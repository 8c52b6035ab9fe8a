// Reading a SparseConv node when ONNX Runtime creates its kernel, for every execution provider:
// attributes, the constant CSR (validated and packed), the declared input shape and the bias.
#pragma once
#include <onnxruntime_cxx_api.h>

#include <optional>
#include <string>
#include <vector>

#include "kernels/conv_params.h"
#include "kernels/errors.h"
#include "kernels/sparse_weights.h"

namespace onnx_sparsify {

struct NodeSetup {
  ConvAttributes attrs;
  SparseWeights weights;
  std::vector<int64_t> x_shape;                // as declared: -1 for unknown sizes; empty if unknown
  bool has_bias = false;                       // a B input is connected
  std::optional<std::vector<float>> constant_bias;  // B, when it is a constant
};

// Throws InvalidArgument naming the problem.
NodeSetup ReadNode(const OrtApi& api, const OrtKernelInfo* info);

// A constant input read at kernel creation: its type, shape and data (owned by ORT).
struct ConstantInput {
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  int64_t size() const;  // the number of elements
};

// The ranks a constant input may have: 1-D only (the CSR), or a scalar or 1-D (scales).
enum class ConstantRank { kOneD, kScalarOrOneD };

// Input `index` (called `name` in errors), which must be a constant initializer of `rank`;
// throws InvalidArgument otherwise.
ConstantInput GetConstantInput(const OrtApi& api, const OrtKernelInfo* info, size_t index, const char* name,
                               ConstantRank rank = ConstantRank::kOneD);

// Validates the CSR inputs (values already as float) and decodes them for X's declared shape.
SparseWeights PackCsr(const ConvAttributes& attrs, const std::vector<int64_t>& x_shape, const float* values,
                      int64_t num_values, const ConstantInput& cols, const ConstantInput& row_ptr);

// X's shape as the model declares it (-1 for unknown sizes), or empty when unknown.
std::vector<int64_t> DeclaredInputShape(const OrtApi& api, const OrtKernelInfo* info);

// The plan `make(shape)` returns for the shape the node prepares for (PlannedInputShape, which
// throws for a hint contradicting a declared size). input_shape_hint is for speed only: a hint no
// input could run with (a kernel larger than its padded input) prepares nothing (`make({})`), and
// each call's shape is checked as it comes.
template <class Make>
auto PlanForNode(const ConvAttributes& attrs, const std::vector<int64_t>& declared, Make make) {
  const std::vector<int64_t> planned = attrs.PlannedInputShape(declared);
  try {
    return make(planned);
  } catch (const InvalidArgument&) {
    if (!attrs.PlansFromHint(declared)) throw;
    return make(std::vector<int64_t>{});
  }
}

// Whether optional input `index` is connected.
bool InputPresent(const OrtApi& api, const OrtKernelInfo* info, size_t index);

std::string NodeName(const OrtApi& api, const OrtKernelInfo* info);

// The residual input Z of one call (data in the provider's memory), or null when the node has
// none; throws InvalidArgument unless Z has the output's shape.
const float* ResidualInput(Ort::KernelContext& ctx, const std::vector<int64_t>& output_shape);

}  // namespace onnx_sparsify
