#include "sparse_conv_cpu.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace onnx_sparsify {
namespace {

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define ONNX_SPARSIFY_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ONNX_SPARSIFY_MULTIVERSION
#endif

// Accumulates T consecutive outputs of one row over all nonzeros of one output channel:
// acc[t] += w_j * in[off_j + t * stride]. With stride 1 every nonzero is one contiguous load.
template <int T, bool kUnitStride>
inline __attribute__((always_inline)) void Tile(const float* in, int64_t stride, const int64_t* offsets,
                                                  const float* values, int64_t nnz, float bias, float* out) {
  float acc[T];
  for (int t = 0; t < T; ++t) acc[t] = 0.0f;
  for (int64_t j = 0; j < nnz; ++j) {
    const float v = values[j];
    const float* p = in + offsets[j];
    for (int t = 0; t < T; ++t) acc[t] += v * p[kUnitStride ? t : t * stride];
  }
  for (int t = 0; t < T; ++t) out[t] = acc[t] + bias;
}

// One output row of `width` positions; `in` points at the input element under the row's first
// output position for kernel offset 0.
ONNX_SPARSIFY_MULTIVERSION
void ComputeRow(const float* in, int64_t stride, const int64_t* offsets, const float* values, int64_t nnz,
                float bias, float* out, int64_t width) {
  constexpr int kWide = 32, kNarrow = 8;
  int64_t x = 0;
  if (stride == 1) {
    for (; x + kWide <= width; x += kWide) Tile<kWide, true>(in + x, 1, offsets, values, nnz, bias, out + x);
    for (; x + kNarrow <= width; x += kNarrow) Tile<kNarrow, true>(in + x, 1, offsets, values, nnz, bias, out + x);
    for (; x < width; ++x) Tile<1, true>(in + x, 1, offsets, values, nnz, bias, out + x);
  } else {
    for (; x + kNarrow <= width; x += kNarrow) {
      Tile<kNarrow, false>(in + x * stride, stride, offsets, values, nnz, bias, out + x);
    }
    for (; x < width; ++x) Tile<1, true>(in + x * stride, 1, offsets, values, nnz, bias, out + x);
  }
}

// Copies X into a zero-padded buffer, one (n, c) plane per task.
void PadInput(const ConvGeometry& g, const float* x, float* padded, const ParallelFor& parallel_for) {
  const AxisGeometry& a0 = g.axes[0];
  const AxisGeometry& a1 = g.axes[1];
  const AxisGeometry& a2 = g.axes[2];
  const int64_t in_plane = a0.in * a1.in * a2.in;
  parallel_for(g.batch * g.in_channels, [&](int64_t plane) {
    const float* src = x + plane * in_plane;
    float* dst = padded + plane * g.padded_plane;
    std::fill(dst, dst + g.padded_plane, 0.0f);
    for (int64_t d = 0; d < a0.in; ++d) {
      for (int64_t h = 0; h < a1.in; ++h) {
        float* row = dst + ((d + a0.pad_begin) * a1.padded() + h + a1.pad_begin) * a2.padded() + a2.pad_begin;
        std::memcpy(row, src + (d * a1.in + h) * a2.in, sizeof(float) * a2.in);
      }
    }
  });
}

}  // namespace

void SerialFor(int64_t total, const std::function<void(int64_t)>& body) {
  for (int64_t i = 0; i < total; ++i) body(i);
}

ConvGeometry PrepareCall(const ConvAttributes& attrs, const SparseWeights& weights,
                         const std::vector<int64_t>& x_shape) {
  ConvGeometry g = ResolveGeometry(attrs, x_shape, weights.out_channels());
  weights.CheckInputChannels(g.in_channels, g.group);
  return g;
}

void SparseConvCpu(const ConvAttributes& attrs, const SparseWeights& weights, const float* bias,
                   const ConvGeometry& g, const float* x, float* y, const ParallelFor& parallel_for) {
  if (g.out_elements == 0) return;
  const AxisGeometry& a0 = g.axes[0];
  const AxisGeometry& a1 = g.axes[1];
  const AxisGeometry& a2 = g.axes[2];

  // The input as the kernel reads it: padded once per call, so every tap is an unchecked load.
  std::vector<float> padded_storage;
  const float* src = x;
  if (g.has_padding) {
    padded_storage.resize(static_cast<size_t>(g.batch * g.in_channels * g.padded_plane));
    PadInput(g, x, padded_storage.data(), parallel_for);
    src = padded_storage.data();
  }

  // Each tap as an element offset from the window's origin in this input's padded layout.
  const int64_t p1 = a1.padded(), p2 = a2.padded();
  std::vector<int64_t> offsets(static_cast<size_t>(weights.nnz()));
  for (int64_t j = 0; j < weights.nnz(); ++j) {
    const Tap& t = weights.taps()[j];
    offsets[j] = t.channel * g.padded_plane + (t.k[0] * a0.dilation * p1 + t.k[1] * a1.dilation) * p2 +
                 t.k[2] * a2.dilation;
  }

  // Tasks: (n, m, block of output rows), sized to a few tens of thousands of multiply-adds.
  const int64_t rows = a0.out * a1.out;
  const int64_t width = a2.out;
  const int64_t avg_nnz = std::max<int64_t>(1, weights.nnz() / std::max<int64_t>(1, g.out_channels));
  const int64_t rows_per_task = std::clamp<int64_t>(32768 / std::max<int64_t>(1, width * avg_nnz), 1, rows);
  const int64_t blocks = (rows + rows_per_task - 1) / rows_per_task;
  const Epilogue epilogue = attrs.epilogue;

  parallel_for(g.batch * g.out_channels * blocks, [&](int64_t task) {
    const int64_t block = task % blocks;
    const int64_t nm = task / blocks;
    const int64_t m = nm % g.out_channels;
    const int64_t n = nm / g.out_channels;
    const int64_t group = m / g.out_channels_per_group;
    const float b = bias ? bias[m] : 0.0f;
    const int64_t begin = weights.row_begin(m);
    const int64_t nnz = weights.row_end(m) - begin;
    const float* image = src + (n * g.in_channels + group * g.in_channels_per_group) * g.padded_plane;
    float* out_plane = y + (n * g.out_channels + m) * g.out_plane;
    const int64_t row_end = std::min(rows, (block + 1) * rows_per_task);
    for (int64_t r = block * rows_per_task; r < row_end; ++r) {
      const int64_t od = r / a1.out, oh = r % a1.out;
      const float* in = image + (od * a0.stride * p1 + oh * a1.stride) * p2;
      float* out = out_plane + r * width;
      ComputeRow(in, a2.stride, offsets.data() + begin, weights.values() + begin, nnz, b, out, width);
      ApplyEpilogue(epilogue, out, width);
    }
  });
}

const char* CpuKernelIsa() {
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
#endif
  return "baseline";
}

}  // namespace onnx_sparsify
