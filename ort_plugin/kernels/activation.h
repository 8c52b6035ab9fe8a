// The fused epilogue's formulas, written once for the CPU and CUDA kernels (docs/operator.md).
// Each is a template over T: float (CUDA, and the CPU's scalar uses) with the C library's exp,
// tanh and erfc, or, on the CPU, a GCC vector of 4, 8 or 16 floats with vector_math.h's, so an
// AVX-512 or AVX2 tile applies the epilogue to its accumulators in registers.
// Every one maps NaN to NaN: comparisons are written so that a NaN falls through unchanged
// (std::max / fmaxf would turn it into the bound).
#pragma once
#include <cmath>

#include "kernels/conv_params.h"

#ifdef __CUDACC__
#define ONNX_SPARSIFY_FORMULA __host__ __device__ inline
#else
#include "kernels/vector_math.h"
#define ONNX_SPARSIFY_FORMULA __attribute__((always_inline)) inline
#endif

namespace onnx_sparsify::activation {

ONNX_SPARSIFY_FORMULA float Exp(float v) { return expf(v); }
ONNX_SPARSIFY_FORMULA float Tanh(float v) { return tanhf(v); }
ONNX_SPARSIFY_FORMULA float Erfc(float v) { return erfcf(v); }

// A constant as a T.
template <class T>
ONNX_SPARSIFY_FORMULA T K(float c) {
  return T{} + c;
}

// min(max(v, lo), hi), keeping NaN.
template <class T>
ONNX_SPARSIFY_FORMULA T Clamp(T v, float lo, float hi) {
  return v < lo ? K<T>(lo) : (v > hi ? K<T>(hi) : v);
}
template <class T>
ONNX_SPARSIFY_FORMULA T Relu(T v) {
  return v < 0.0f ? K<T>(0.0f) : v;
}
template <class T>
ONNX_SPARSIFY_FORMULA T LeakyRelu(T v, float alpha) {
  return v < 0.0f ? v * alpha : v;
}
template <class T>
ONNX_SPARSIFY_FORMULA T HardSigmoid(T v, float alpha, float beta) {
  return Clamp(v * alpha + beta, 0.0f, 1.0f);
}
template <class T>
ONNX_SPARSIFY_FORMULA T HardSwish(T v) {
  return v * Clamp(v / 6.0f + 0.5f, 0.0f, 1.0f);
}
// v * sigmoid(t) with one exponential that never overflows: h = exp(-|t| / 2), sigmoid(t) is
// 1 / (1 + h h) for t >= 0 and h h / (1 + h h) for t < 0, computed as (v h) h so that results stay
// accurate down to where the product itself underflows (1 / (1 + exp(-t)) loses them below -88.7).
template <class T>
ONNX_SPARSIFY_FORMULA T MulSigmoid(T v, T t) {
  const T h = Exp((t < 0.0f ? t : -t) * 0.5f);
  return (t < 0.0f ? (v * h) * h : v) / (h * h + 1.0f);
}
template <class T>
ONNX_SPARSIFY_FORMULA T Sigmoid(T v) {
  return MulSigmoid(K<T>(1.0f), v);
}
template <class T>
ONNX_SPARSIFY_FORMULA T SiLU(T v) {
  return MulSigmoid(v, v);
}
template <class T>
ONNX_SPARSIFY_FORMULA T QuickGelu(T v, float alpha) {
  return MulSigmoid(v, v * alpha);
}
// 0.5 v (1 + erf(v / sqrt(2))), written with erfc(-z) = 1 + erf(z): for negative v the sum
// 1 + erf cancels and loses every digit that erfc keeps.
template <class T>
ONNX_SPARSIFY_FORMULA T Gelu(T v) {
  return v * 0.5f * Erfc(v * -0.70710678118654752f);
}
// 0.5 v (1 + tanh(u)), u = sqrt(2/pi) (v + 0.044715 v^3), written as v sigmoid(2u) (1 + tanh(u)
// = 2 sigmoid(2u)) for the same reason as Gelu's erfc.
template <class T>
ONNX_SPARSIFY_FORMULA T GeluTanh(T v) {
  return MulSigmoid(v, v * 1.59576912160573071f * (v * v * 0.044715f + 1.0f));
}
// v tanh(softplus(v)) = v n / (n + 2) with n = e^v (e^v + 2): no sum cancels and nothing
// overflows below v = 20, above which tanh(softplus(v)) is 1 in float32.
template <class T>
ONNX_SPARSIFY_FORMULA T Mish(T v) {
  const T e = Exp(v > 20.0f ? K<T>(20.0f) : v);
  const T n = e * (e + 2.0f);
  return v > 20.0f ? v : v * (n / (n + 2.0f));
}

// Calls apply(f) with f computing step `s` on a T (bias already added; `slope` is PRelu's for
// this output channel): one switch per step for a whole tile of registers, not one per
// register. On the CPU the lambdas are forced inline so that inside an AVX-512 or AVX2 kernel
// they compile to its instruction set (a lambda does not inherit `target`).
#ifdef __CUDACC__
#define ONNX_SPARSIFY_LAMBDA
#else
#define ONNX_SPARSIFY_LAMBDA __attribute__((always_inline))
#endif
template <class T, class Apply>
ONNX_SPARSIFY_FORMULA void DispatchStep(const EpilogueStep& s, float slope, Apply&& apply) {
  switch (s.kind) {
    case Activation::kNone: return;
    case Activation::kRelu: return apply([](T v) ONNX_SPARSIFY_LAMBDA { return Relu(v); });
    case Activation::kLeakyRelu: return apply([a = s.alpha](T v) ONNX_SPARSIFY_LAMBDA { return LeakyRelu(v, a); });
    case Activation::kPRelu: return apply([slope](T v) ONNX_SPARSIFY_LAMBDA { return LeakyRelu(v, slope); });
    case Activation::kClip: return apply([lo = s.alpha, hi = s.beta](T v) ONNX_SPARSIFY_LAMBDA { return Clamp(v, lo, hi); });
    case Activation::kSigmoid: return apply([](T v) ONNX_SPARSIFY_LAMBDA { return Sigmoid(v); });
    case Activation::kHardSigmoid:
      return apply([a = s.alpha, b = s.beta](T v) ONNX_SPARSIFY_LAMBDA { return HardSigmoid(v, a, b); });
    case Activation::kHardSwish: return apply([](T v) ONNX_SPARSIFY_LAMBDA { return HardSwish(v); });
    case Activation::kSiLU: return apply([](T v) ONNX_SPARSIFY_LAMBDA { return SiLU(v); });
    case Activation::kTanh: return apply([](T v) ONNX_SPARSIFY_LAMBDA { return Tanh(v); });
    case Activation::kGelu: return apply([](T v) ONNX_SPARSIFY_LAMBDA { return Gelu(v); });
    case Activation::kGeluTanh: return apply([](T v) ONNX_SPARSIFY_LAMBDA { return GeluTanh(v); });
    case Activation::kQuickGelu: return apply([a = s.alpha](T v) ONNX_SPARSIFY_LAMBDA { return QuickGelu(v, a); });
    case Activation::kMish: return apply([](T v) ONNX_SPARSIFY_LAMBDA { return Mish(v); });
  }
}
#undef ONNX_SPARSIFY_LAMBDA

// One value through the whole epilogue (bias already added).
template <class T>
ONNX_SPARSIFY_FORMULA T Apply(const Epilogue& e, T v, float slope) {
  for (int i = 0; i < e.count; ++i) {
    DispatchStep<T>(e.steps[i], slope, [&v](auto f) { v = f(v); });
  }
  return v;
}

}  // namespace onnx_sparsify::activation
