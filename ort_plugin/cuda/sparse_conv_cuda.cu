#include "cuda/sparse_conv_cuda.h"

#include "kernels/activation.h"

namespace onnx_sparsify::cuda {
namespace {

struct Axis {
  int64_t in, out, stride, dilation, pad_begin;
};

struct Params {
  int64_t batch, in_channels, out_channels, in_per_group, out_per_group;
  Axis axes[kMaxSpatialRank];
  Epilogue epilogue;
};

// One thread per output element; each walks its output channel's nonzeros.
__global__ void SparseConvDirect(Params p, DeviceWeights w, const float* __restrict__ bias,
                                 const float* __restrict__ x, float* __restrict__ y, int64_t total) {
  const int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (index >= total) return;
  int64_t rest = index;
  int64_t o[kMaxSpatialRank];
  for (int a = kMaxSpatialRank - 1; a >= 0; --a) {
    o[a] = rest % p.axes[a].out;
    rest /= p.axes[a].out;
  }
  const int64_t m = rest % p.out_channels;
  const int64_t n = rest / p.out_channels;
  const int64_t first_channel = (m / p.out_per_group) * p.in_per_group;
  float acc = 0.0f;
  for (int64_t j = w.row_begin[m]; j < w.row_begin[m + 1]; ++j) {
    const Tap t = w.taps[j];
    int64_t offset = n * p.in_channels + first_channel + t.channel;
    bool inside = true;
    for (int a = 0; a < kMaxSpatialRank; ++a) {
      const int64_t i = o[a] * p.axes[a].stride - p.axes[a].pad_begin + t.k[a] * p.axes[a].dilation;
      inside = inside && i >= 0 && i < p.axes[a].in;
      offset = offset * p.axes[a].in + i;
    }
    if (inside) acc += w.values[j] * x[offset];
  }
  y[index] = activation::Apply(p.epilogue, acc + (bias ? bias[m] : 0.0f));
}

}  // namespace

cudaError_t LaunchSparseConv(const ConvGeometry& g, const Epilogue& epilogue, const DeviceWeights& weights,
                             const float* bias, const float* x, float* y, cudaStream_t stream) {
  if (g.out_elements == 0) return cudaSuccess;
  Params p{g.batch, g.in_channels, g.out_channels, g.in_channels_per_group, g.out_channels_per_group, {}, epilogue};
  for (int a = 0; a < kMaxSpatialRank; ++a) {
    const AxisGeometry& ax = g.axes[a];
    p.axes[a] = Axis{ax.in, ax.out, ax.stride, ax.dilation, ax.pad_begin};
  }
  constexpr int kThreads = 256;
  const int64_t blocks = (g.out_elements + kThreads - 1) / kThreads;
  SparseConvDirect<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, weights, bias, x, y, g.out_elements);
  return cudaGetLastError();
}

}  // namespace onnx_sparsify::cuda
