// exp, tanh and erfc on GCC vector types (4, 8 or 16 floats) for the CPU kernels' epilogues,
// with the accuracy docs/operator.md states (tests/test_activation_fusion.py measures it against
// float64 on every instruction-set path). Generic code: a function inlined into an AVX-512 or AVX2
// kernel compiles to that instruction set. Every function maps NaN to NaN.
#pragma once
#include <cstdint>

// These functions take and return vectors wider than the baseline instruction set's; they are
// always inlined into functions compiled for an instruction set that has them, so GCC's notes on
// the calling convention such vectors would have out of line do not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace onnx_sparsify::activation {

typedef float V4 __attribute__((vector_size(16)));
typedef float V8 __attribute__((vector_size(32)));
typedef float V16 __attribute__((vector_size(64)));
typedef int32_t I4 __attribute__((vector_size(16)));
typedef int32_t I8 __attribute__((vector_size(32)));
typedef int32_t I16 __attribute__((vector_size(64)));

template <class V>
struct IntVector;
template <>
struct IntVector<V4> {
  using type = I4;
};
template <>
struct IntVector<V8> {
  using type = I8;
};
template <>
struct IntVector<V16> {
  using type = I16;
};

#define ONNX_SPARSIFY_VECTOR_MATH __attribute__((always_inline)) inline

template <class V>
ONNX_SPARSIFY_VECTOR_MATH V Broadcast(float c) {
  return V{} + c;
}

// e^x: x = n ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, so n ln2 is exact), e^r by its Taylor
// polynomial to r^7 (truncation below 6e-9), 2^n applied as two factors so that results down to
// the smallest subnormal come out without building an out-of-range exponent. Max relative error
// 2.5e-7 for normal results. Below -104 the result is 0 (also -inf); above 89, +inf.
template <class V>
ONNX_SPARSIFY_VECTOR_MATH V ExpOf(V x) {
  using I = typename IntVector<V>::type;
  const V lo = Broadcast<V>(-104.0f), hi = Broadcast<V>(89.0f);
  V c = x < lo ? lo : (x > hi ? hi : x);
  const V magic = Broadcast<V>(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  V n = (c * 1.44269504088896341f + magic) - magic;
  n = n == n ? n : V{};  // NaN: keep the integer conversion defined; r carries the NaN
  V r = c - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  V p = Broadcast<V>(1.0f / 5040.0f);
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const I ni = __builtin_convertvector(n, I);
  const I half = ni >> 1;
  const V scale_a = (V)((half + 127) << 23);  // a vector cast keeps the bits
  const V scale_b = (V)((ni - half + 127) << 23);
  return x < lo ? V{} : p * scale_a * scale_b;
}

// tanh: an odd Taylor polynomial to x^17 for |x| < 0.5 (truncation below 1e-9), else
// 1 - 2 / (e^2|x| + 1) with the sign of x. Max relative error 4e-7.
template <class V>
ONNX_SPARSIFY_VECTOR_MATH V TanhOf(V x) {
  const V a = x < 0.0f ? -x : x;
  const V a2 = a * a;
  V p = Broadcast<V>(6404582.0f / 10854718875.0f);
  p = p * a2 - 929569.0f / 638512875.0f;
  p = p * a2 + 21844.0f / 6081075.0f;
  p = p * a2 - 1382.0f / 155925.0f;
  p = p * a2 + 62.0f / 2835.0f;
  p = p * a2 - 17.0f / 315.0f;
  p = p * a2 + 2.0f / 15.0f;
  p = p * a2 - 1.0f / 3.0f;
  p = p * a2 * a + a;
  const V big = 1.0f - 2.0f / (ExpOf(a + a) + 1.0f);
  const V t = a < 0.5f ? p : big;
  return x < 0.0f ? -t : t;
}

// erfc: Chebyshev-fitted form t exp(-z^2 - 1.26551223 + t P(t)), t = 1 / (1 + |z| / 2), fractional
// error below 1.2e-7 in exact arithmetic (Press et al., Numerical Recipes, erfcc), 2 - erfc(|z|)
// for negative z. In float32 the exponent's -z^2 adds up to 5e-6 relative error where erfc(z) is
// near the bottom of the normal range (z about 9).
template <class V>
ONNX_SPARSIFY_VECTOR_MATH V ErfcOf(V z) {
  const V a = z < 0.0f ? -z : z;
  const V t = 1.0f / (1.0f + 0.5f * a);
  V p = Broadcast<V>(0.17087277f);
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const V y = t * ExpOf(p - a * a);
  return z < 0.0f ? 2.0f - y : y;
}

#define ONNX_SPARSIFY_VECTOR_OVERLOADS(V)                        \
  ONNX_SPARSIFY_VECTOR_MATH V Exp(V x) { return ExpOf(x); }      \
  ONNX_SPARSIFY_VECTOR_MATH V Tanh(V x) { return TanhOf(x); }    \
  ONNX_SPARSIFY_VECTOR_MATH V Erfc(V x) { return ErfcOf(x); }
ONNX_SPARSIFY_VECTOR_OVERLOADS(V4)
ONNX_SPARSIFY_VECTOR_OVERLOADS(V8)
ONNX_SPARSIFY_VECTOR_OVERLOADS(V16)
#undef ONNX_SPARSIFY_VECTOR_OVERLOADS

}  // namespace onnx_sparsify::activation
