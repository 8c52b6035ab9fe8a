#include "kernels/sparse_qconv_cpu.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/errors.h"
#include "kernels/loop_bodies.h"

namespace onnx_sparsify {
namespace {

constexpr int64_t kRowChunk = 256;  // output positions accumulated at once

// x - x_zero_point as int16, for every element of X.
template <class T>
void SubtractZero(const T* x, int64_t n, int32_t zero, int16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int16_t>(static_cast<int32_t>(x[i]) - zero);
}

// One output channel plane of image n: each output row's positions accumulated in int32 from the
// staged input `in` (the channel's group, phase layout), then requantized into `y`.
template <class T>
void ComputeChannel(const ConvGeometry& g, const QuantizedWeights& w, const int64_t* offsets, const int16_t* in,
                    int64_t m, T* y) {
  const PhaseLayout& l = g.layout;
  const QuantParams& q = w.quant();
  const int32_t bias = w.bias() ? w.bias()[m] : 0;
  const float multiplier = q.multipliers[static_cast<size_t>(m)];
  const int64_t begin = w.weights().row_begin(m), end = w.weights().row_end(m);
  const int8_t* values = w.values();
  int32_t acc[kRowChunk];
  for (int64_t o0 = 0; o0 < g.axes[0].out; ++o0) {
    for (int64_t o1 = 0; o1 < g.axes[1].out; ++o1) {
      const int64_t virtual_row = (o0 * l.extent[1] + o1) * l.extent[2];
      T* out = y + (o0 * g.axes[1].out + o1) * g.axes[2].out;
      for (int64_t c0 = 0; c0 < g.axes[2].out; c0 += kRowChunk) {
        const int64_t n = std::min(kRowChunk, g.axes[2].out - c0);
        std::fill(acc, acc + n, bias);
        for (int64_t j = begin; j < end; ++j) {
          const int32_t v = values[j];
          const int16_t* src = in + virtual_row + c0 + offsets[j];
          for (int64_t t = 0; t < n; ++t) acc[t] += v * src[t];
        }
        for (int64_t t = 0; t < n; ++t) {
          out[c0 + t] = static_cast<T>(Requantize(acc[t], multiplier, q.y_zero, q.y_min(), q.y_max()));
        }
      }
    }
  }
}

template <class T>
void Run(const ConvGeometry& g, const QuantizedWeights& w, const int64_t* offsets, const T* x, T* y,
         const ParallelFor& parallel_for, const ScratchAllocator& scratch) {
  const PhaseLayout& l = g.layout;
  const int64_t in_plane = g.axes[0].in * g.axes[1].in * g.axes[2].in;
  const int64_t planes = g.batch * g.in_channels;
  // int16 buffers from float scratch: two int16 per float.
  auto int16_scratch = [&](int64_t n) { return reinterpret_cast<int16_t*>(scratch(static_cast<size_t>(n + 1) / 2)); };
  int16_t* centered = int16_scratch(planes * in_plane);
  parallel_for(planes, [&](int64_t p) { SubtractZero(x + p * in_plane, in_plane, w.quant().x_zero, centered + p * in_plane); });
  const int16_t* staged = centered;
  if (l.copy) {
    int16_t* buffer = int16_scratch(planes * l.channel_stride);
    parallel_for(planes, [&](int64_t p) {
      FillPlaneBody<int16_t>(g, centered + p * in_plane, buffer + p * l.channel_stride);
    });
    staged = buffer;
  }
  parallel_for(g.batch * g.out_channels, [&](int64_t task) {
    const int64_t n = task / g.out_channels, m = task % g.out_channels;
    const int64_t group = m / g.out_channels_per_group;
    const int16_t* in = staged + (n * g.in_channels + group * g.in_channels_per_group) * l.channel_stride;
    ComputeChannel<T>(g, w, offsets, in, m, y + task * g.out_plane);
  });
}

}  // namespace

QuantizedWeights::QuantizedWeights(CpuWeights weights, QuantParams quant, std::vector<int32_t> bias)
    : weights_(std::move(weights)), quant_(std::move(quant)), bias_(std::move(bias)) {
  const int64_t out_channels = weights_.out_channels();
  if (!bias_.empty() && static_cast<int64_t>(bias_.size()) != out_channels) {
    throw InvalidArgument("B must have shape [" + std::to_string(out_channels) + "]");
  }
  if (static_cast<int64_t>(quant_.multipliers.size()) != out_channels) {
    throw InvalidArgument("w_scale must hold 1 or " + std::to_string(out_channels) + " values");
  }
  values_.resize(static_cast<size_t>(weights_.nnz()));
  for (int64_t j = 0; j < weights_.nnz(); ++j) {
    const float v = weights_.values()[j];
    if (!(v >= -128.0f && v <= 127.0f) || v != std::nearbyint(v)) {
      throw InvalidArgument("W_values must be int8 (the nonzeros of W minus its zero point)");
    }
    values_[static_cast<size_t>(j)] = static_cast<int8_t>(v);
  }
  // |x - x_zero_point| <= 255: each output's sum is bounded by its row's sum of |w| times 255.
  for (int64_t m = 0; m < out_channels; ++m) {
    int64_t bound = bias_.empty() ? 0 : std::abs(int64_t{bias_[static_cast<size_t>(m)]});
    for (int64_t j = weights_.row_begin(m); j < weights_.row_end(m); ++j) bound += 255 * std::abs(int64_t{values_[j]});
    if (bound > std::numeric_limits<int32_t>::max()) {
      throw InvalidArgument("output channel " + std::to_string(m) +
                            ": its int32 accumulation could overflow (too many nonzeros of too large a magnitude)");
    }
  }
}

void SparseQConvCpu(const CpuPlan& plan, const QuantizedWeights& w, const ConvGeometry& g, const void* x, void* y,
                    const ParallelFor& parallel_for, const ScratchAllocator& scratch) {
  if (g.out_elements == 0) return;
  std::vector<int64_t> call_offsets;
  if (!plan.Serves(g)) call_offsets = TapOffsets(w.weights(), g.layout);
  const int64_t* offsets = plan.Serves(g) ? plan.offsets().data() : call_offsets.data();
  if (w.quant().is_signed) {
    Run(g, w, offsets, static_cast<const int8_t*>(x), static_cast<int8_t*>(y), parallel_for, scratch);
  } else {
    Run(g, w, offsets, static_cast<const uint8_t*>(x), static_cast<uint8_t*>(y), parallel_for, scratch);
  }
}

}  // namespace onnx_sparsify
