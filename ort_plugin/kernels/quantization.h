// SparseQLinearConv's arithmetic: what ONNX's QLinearConv computes, exactly as ONNX Runtime's CPU
// kernel computes it: the products of (x - x_zero_point) and the weight's (w - w_zero_point)
// summed in int32 with the int32 bias, then requantized in float,
//   y = saturate(round_half_even(float(acc) * multiplier[m]) + y_zero_point),
// multiplier[m] = x_scale * w_scale[m] / y_scale evaluated in float, left to right.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace onnx_sparsify {

struct QuantParams {
  bool is_signed = false;  // X and Y are int8, else uint8
  int32_t x_zero = 0, y_zero = 0;
  std::vector<float> multipliers;  // one per output channel

  int32_t y_min() const { return is_signed ? -128 : 0; }
  int32_t y_max() const { return is_signed ? 127 : 255; }

  // Validates the scales (finite, positive) and zero points (in the type's range) and returns the
  // parameters for `out_channels` channels; w_scales holds 1 or out_channels values. Throws
  // InvalidArgument naming the problem.
  static QuantParams Make(bool is_signed, float x_scale, int32_t x_zero, const std::vector<float>& w_scales,
                          float y_scale, int32_t y_zero, int64_t out_channels);
};

// One output: acc (the int32 sum, bias included) requantized to Y's type range [lo, hi]. Clamped
// before rounding, as ONNX Runtime does (the bounds are integers: the same as after).
inline int32_t Requantize(int32_t acc, float multiplier, int32_t y_zero, int32_t lo, int32_t hi) {
  float v = static_cast<float>(acc) * multiplier;
  v = std::min(std::max(v, static_cast<float>(lo - y_zero)), static_cast<float>(hi - y_zero));
  return static_cast<int32_t>(std::nearbyint(v)) + y_zero;  // the default rounding: half to even
}

}  // namespace onnx_sparsify
