// The fused activations' formulas, written once for the CPU and CUDA kernels (docs/operator.md).
// Every one maps NaN to NaN: comparisons are written so that a NaN falls through unchanged
// (std::max / fmaxf would turn it into the bound).
#pragma once
#include <cmath>

#include "kernels/conv_params.h"

#ifdef __CUDACC__
#define ONNX_SPARSIFY_HOST_DEVICE __host__ __device__
#else
#define ONNX_SPARSIFY_HOST_DEVICE
#endif

namespace onnx_sparsify::activation {

// min(max(v, lo), hi), keeping NaN.
ONNX_SPARSIFY_HOST_DEVICE inline float Clamp(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

ONNX_SPARSIFY_HOST_DEVICE inline float Relu(float v) { return v < 0.0f ? 0.0f : v; }
ONNX_SPARSIFY_HOST_DEVICE inline float LeakyRelu(float v, float alpha) { return v < 0.0f ? alpha * v : v; }
ONNX_SPARSIFY_HOST_DEVICE inline float Sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }
ONNX_SPARSIFY_HOST_DEVICE inline float HardSigmoid(float v, float alpha, float beta) {
  return Clamp(alpha * v + beta, 0.0f, 1.0f);
}
ONNX_SPARSIFY_HOST_DEVICE inline float HardSwish(float v) { return v * Clamp(v / 6.0f + 0.5f, 0.0f, 1.0f); }

// One value through the epilogue `e` (bias already added).
ONNX_SPARSIFY_HOST_DEVICE inline float Apply(const Epilogue& e, float v) {
  switch (e.kind) {
    case Activation::kNone: return v;
    case Activation::kRelu: return Relu(v);
    case Activation::kLeakyRelu: return LeakyRelu(v, e.alpha);
    case Activation::kClip: return Clamp(v, e.alpha, e.beta);
    case Activation::kSigmoid: return Sigmoid(v);
    case Activation::kHardSigmoid: return HardSigmoid(v, e.alpha, e.beta);
    case Activation::kHardSwish: return HardSwish(v);
  }
  return v;
}

}  // namespace onnx_sparsify::activation
