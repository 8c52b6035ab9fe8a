#include "kernels/quantization.h"

#include <string>

#include "kernels/errors.h"

namespace onnx_sparsify {
namespace {

void CheckScale(float scale, const char* name) {
  if (!std::isfinite(scale) || scale <= 0.0f) {
    throw InvalidArgument(std::string(name) + " must be finite and positive, got " + std::to_string(scale));
  }
}

}  // namespace

QuantParams QuantParams::Make(bool is_signed, float x_scale, int32_t x_zero, const std::vector<float>& w_scales,
                              float y_scale, int32_t y_zero, int64_t out_channels) {
  QuantParams q;
  q.is_signed = is_signed;
  const int32_t lo = q.y_min(), hi = q.y_max();
  if (x_zero < lo || x_zero > hi || y_zero < lo || y_zero > hi) {
    throw InvalidArgument("x_zero_point and y_zero_point must lie in the range of X's type");
  }
  q.x_zero = x_zero;
  q.y_zero = y_zero;
  CheckScale(x_scale, "x_scale");
  CheckScale(y_scale, "y_scale");
  if (w_scales.size() != 1 && static_cast<int64_t>(w_scales.size()) != out_channels) {
    throw InvalidArgument("w_scale must hold 1 or " + std::to_string(out_channels) + " values (one per output channel)");
  }
  q.multipliers.resize(static_cast<size_t>(out_channels));
  for (int64_t m = 0; m < out_channels; ++m) {
    const float w_scale = w_scales[w_scales.size() == 1 ? 0 : static_cast<size_t>(m)];
    CheckScale(w_scale, "w_scale");
    q.multipliers[static_cast<size_t>(m)] = x_scale * w_scale / y_scale;
    if (!std::isfinite(q.multipliers[static_cast<size_t>(m)])) {
      throw InvalidArgument("x_scale * w_scale / y_scale is not finite in float32");
    }
  }
  return q;
}

}  // namespace onnx_sparsify
