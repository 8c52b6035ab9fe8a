// SparseConv's fused epilogue (docs/operator.md): the steps after bias and residual, parsed
// from the node's activation attributes. The formulas are in activation.h.
#pragma once
#include <vector>

#include "contract.h"

namespace onnx_sparsify {

class AttributeSource;

enum class Activation {
  kNone,
  kRelu,
  kLeakyRelu,
  kClip,
  kSigmoid,
  kHardSigmoid,
  kHardSwish,
  kSiLU,
  kTanh,
  kGelu,       // exact: 0.5 v (1 + erf(v / sqrt(2)))
  kGeluTanh,   // ONNX Gelu approximate="tanh"
  kQuickGelu,  // v sigmoid(alpha v) (ORT's com.microsoft QuickGelu; Swish with beta = alpha)
  kMish,       // v tanh(softplus(v))
  kPRelu,      // v < 0 ? slope[m] v : v, slopes per output channel (ConvAttributes::activation_slopes)
};

// One step of the epilogue.
struct EpilogueStep {
  Activation kind = Activation::kNone;
  float alpha = 0.0f;  // LeakyRelu alpha, HardSigmoid alpha, Clip min, QuickGelu alpha
  float beta = 0.0f;   // HardSigmoid beta, Clip max
};

// The epilogue applied after bias, its steps in order: y = f_n(...f_1(conv + b)). Trivially
// copyable (CUDA kernels take it by value); PRelu's per-channel slopes live in ConvAttributes
// and reach the formulas as one `slope` per output channel.
struct Epilogue {
  EpilogueStep steps[kMaxEpilogueSteps];
  int count = 0;
  bool empty() const { return count == 0; }
};

// One step as the contract names it (docs/operator.md): its name in `activation`, the number of
// activation_params it takes and their defaults (the first num_params of `defaults`).
struct EpilogueStepInfo {
  const char* name;
  int num_params;
  double defaults[2];  // exactly as the contract writes them (0.01); the kernel computes with their float values
};

// Every step ParseEpilogue accepts, in the order of its table (onnx_sparsify._core.ACTIVATIONS).
std::vector<EpilogueStepInfo> EpilogueSteps();

// Reads attributes activation, activation_params and activation_slopes (PRelu's slopes go to
// `slopes`); throws InvalidArgument naming the problem.
Epilogue ParseEpilogue(const AttributeSource& src, std::vector<float>* slopes);

}  // namespace onnx_sparsify
