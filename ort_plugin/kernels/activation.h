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
// v * sigmoid(t). For t < 0 it uses h = exp(t / 2): (v h) h / (1 + h h) stays accurate down to
// where the product itself underflows, while 1 / (1 + exp(-t)) would see exp(-t) overflow (t
// below -88.7) and return 0 for results still in float32's normal range.
ONNX_SPARSIFY_HOST_DEVICE inline float MulSigmoid(float v, float t) {
  if (t < 0.0f) {
    const float h = expf(0.5f * t);
    return (v * h) * h / (1.0f + h * h);
  }
  return v / (1.0f + expf(-t));  // also NaN: a NaN t fails the test above
}
ONNX_SPARSIFY_HOST_DEVICE inline float SiLU(float v) { return MulSigmoid(v, v); }
ONNX_SPARSIFY_HOST_DEVICE inline float Tanh(float v) { return tanhf(v); }
// 0.5 v (1 + erf(v / sqrt(2))), written with erfc(-z) = 1 + erf(z): for negative v the sum
// 1 + erf cancels and loses every digit that erfc keeps.
ONNX_SPARSIFY_HOST_DEVICE inline float Gelu(float v) { return 0.5f * v * erfcf(-0.70710678118654752f * v); }
// 0.5 v (1 + tanh(u)), u = sqrt(2/pi) (v + 0.044715 v^3), written as v sigmoid(2u) (1 + tanh(u)
// = 2 sigmoid(2u)) for the same reason as Gelu's erfc.
ONNX_SPARSIFY_HOST_DEVICE inline float GeluTanh(float v) {
  return MulSigmoid(v, 1.59576912160573071f * v * (1.0f + 0.044715f * v * v));
}

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
    case Activation::kSiLU: return SiLU(v);
    case Activation::kTanh: return Tanh(v);
    case Activation::kGelu: return Gelu(v);
    case Activation::kGeluTanh: return GeluTanh(v);
  }
  return v;
}

}  // namespace onnx_sparsify::activation
