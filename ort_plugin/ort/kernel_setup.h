// Reading a SparseConv node when ONNX Runtime creates its kernel, for every execution provider:
// attributes, the constant CSR (validated and packed), the declared input shape and the bias.
#pragma once
#include <onnxruntime_cxx_api.h>

#include <optional>
#include <string>
#include <vector>

#include "kernels/conv_params.h"
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

std::string NodeName(const OrtApi& api, const OrtKernelInfo* info);

// The residual input Z of one call (data in the provider's memory), or null when the node has
// none; throws InvalidArgument unless Z has the output's shape.
const float* ResidualInput(Ort::KernelContext& ctx, const std::vector<int64_t>& output_shape);

}  // namespace onnx_sparsify
