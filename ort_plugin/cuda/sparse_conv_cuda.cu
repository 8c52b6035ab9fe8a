// SparseConv's CUDA kernels and their launcher (design: docs/performance.md, "CUDA kernel").
//
// The tiled kernel is the one used: each block stages a zero-padded input tile (halo included)
// in shared memory, one chunk of input channels at a time, and its warps stream their output
// channels' nonzeros as (value, 32-bit tile offset) over it, each thread accumulating several
// outputs. The direct kernel remains only for layers whose input tile of a single channel does
// not fit shared memory (huge strides or dilations).
//
// This file is also compiled as host C++ by the test suite (tests/cuda_emulation/), which
// replaces the two macros below and CUDA's built-ins to run these kernels on the CPU.
#include <algorithm>
#include <string>

#include "cuda/sparse_conv_cuda.h"
#include "kernels/activation.h"
#include "kernels/errors.h"

// kernel<<<grid, block, shared bytes, stream>>>(args...), as a macro the emulation redirects.
#ifndef ONNX_SPARSIFY_LAUNCH
#define ONNX_SPARSIFY_LAUNCH(kernel, grid, block, shared, stream, ...) \
  kernel<<<(grid), (block), (shared), (stream)>>>(__VA_ARGS__)
#endif
// The block's dynamic shared memory as an array `name` of `type`.
#ifndef ONNX_SPARSIFY_DYNAMIC_SHARED
#define ONNX_SPARSIFY_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

namespace onnx_sparsify::cuda {
namespace {

// Call geometry, spatial axes right-aligned into 3 (depth, height, width).
struct CallParams {
  int64_t batch, in_channels, out_channels, in_per_group, out_per_group;
  int64_t in[kMaxSpatialRank], out[kMaxSpatialRank], stride[kMaxSpatialRank], dilation[kMaxSpatialRank],
      pad_begin[kMaxSpatialRank];
  int64_t in_plane;  // prod(in)
  int64_t out_plane;  // prod(out)
  Epilogue epilogue;
};

struct TiledParams {
  CallParams call;
  TileShape tile;
  int64_t tiles_w, tiles_h, tiles;  // spatial tiles along width, height, and in all (depth: one per output plane)
  int64_t row_blocks, items;        // items = batch * tiles * row_blocks
};

// One work item per (image, spatial tile, row block), row block fastest so that consecutive
// blocks reuse the same input tile from L2. A grid-stride loop walks the items, so any grid
// size is correct. Every thread reaches every __syncthreads: branches around them are uniform
// across the block.
__global__ void __launch_bounds__(kThreadsPerBlock)
    SparseConvTiled(TiledParams p, DevicePlan w, const float* __restrict__ bias, const float* __restrict__ slopes,
                    const float* __restrict__ residual, const float* __restrict__ x, float* __restrict__ y) {
  ONNX_SPARSIFY_DYNAMIC_SHARED(TileNonzero, staged);  // TiledSharedBytes(): nonzeros, then the tile
  const CallParams& c = p.call;
  const TileShape& s = p.tile;
  float* tile = reinterpret_cast<float*>(staged + s.warp_rows * kRowsPerWarp * kStagedNonzeros);
  const int thread = static_cast<int>(threadIdx.x);
  const int lane = thread % kWarpSize, warp = thread / kWarpSize;
  // Warps split between output channels (warp_rows of them) and spatial sub-tiles.
  const int warp_tile = warp % (kWarpsPerBlock / s.warp_rows), warp_row = warp / (kWarpsPerBlock / s.warp_rows);
  int lw = lane % s.lanes_w, lh = lane / s.lanes_w;  // this thread's place in the block's tile
  if (s.stack_w) {
    lw += warp_tile * s.lanes_w;
  } else {
    lh += warp_tile * (kWarpSize / s.lanes_w);
  }
  const int32_t in_hw = s.in_h * s.in_w;
  // This thread's first output inside the tile, as an offset into one channel's input tile.
  const int32_t base = static_cast<int32_t>(lh * c.stride[1] * s.in_w + lw * kOutputsPerThread * c.stride[2]);
  const int32_t step = static_cast<int32_t>(c.stride[2]);  // between this thread's consecutive outputs
  const int32_t chunks = s.chunks;

  for (int64_t item = blockIdx.x; item < p.items; item += gridDim.x) {
    const int64_t row_block = item % p.row_blocks;
    const int64_t rest = item / p.row_blocks;
    const int64_t t = rest % p.tiles;
    const int64_t n = rest / p.tiles;
    const int64_t ow0 = (t % p.tiles_w) * s.out_w;
    const int64_t oh0 = ((t / p.tiles_w) % p.tiles_h) * s.out_h;
    const int64_t od = t / (p.tiles_w * p.tiles_h);
    const int64_t iw0 = ow0 * c.stride[2] - c.pad_begin[2];
    const int64_t ih0 = oh0 * c.stride[1] - c.pad_begin[1];
    const int64_t id0 = od * c.stride[0] - c.pad_begin[0];
    const int32_t first = w.block_first[row_block];
    const int32_t count = w.block_first[row_block + 1] - first;
    const int64_t group = w.row_order[first] / c.out_per_group;  // every row of a block is in one group
    const float* xg = x + (n * c.in_channels + group * c.in_per_group) * c.in_plane;

    float acc[kRowsPerWarp][kOutputsPerThread];  // registers: every index below is a constant after unrolling
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; ++j) {
#pragma unroll
      for (int o = 0; o < kOutputsPerThread; ++o) acc[j][o] = 0.0f;
    }
    for (int32_t chunk = 0; chunk < chunks; ++chunk) {
      // The block's longest row in this chunk (uniform: every thread computes the same); chunks
      // none of its rows reads are skipped.
      int64_t longest = 0;
      for (int32_t r = 0; r < count; ++r) {
        const int64_t* cb = w.chunk_begin + int64_t{w.row_order[first + r]} * (chunks + 1) + chunk;
        longest = cb[1] - cb[0] > longest ? cb[1] - cb[0] : longest;
      }
      if (longest == 0) continue;
      // No barrier needed before overwriting the tile: every chunk that used it ended with one.
      const int64_t c0 = int64_t{chunk} * s.chunk_channels;
      const int64_t left = c.in_per_group - c0;
      const int32_t cc = static_cast<int32_t>(left < s.chunk_channels ? left : s.chunk_channels);
      const int32_t elements = cc * s.plane;
      for (int32_t e = thread; e < elements; e += static_cast<int32_t>(blockDim.x)) {
        const int32_t ch = e / s.plane;
        int32_t r = e - ch * s.plane;
        const int32_t a = r / in_hw;
        r -= a * in_hw;
        const int32_t b = r / s.in_w;
        const int64_t zd = id0 + a, zh = ih0 + b, zw = iw0 + (r - b * s.in_w);
        float v = 0.0f;  // the halo outside X is the zero padding
        if (zd >= 0 && zd < c.in[0] && zh >= 0 && zh < c.in[1] && zw >= 0 && zw < c.in[2]) {
          v = xg[(c0 + ch) * c.in_plane + (zd * c.in[1] + zh) * c.in[2] + zw];
        }
        tile[e] = v;
      }
      // Rounds: each of the block's rows stages up to kStagedNonzeros of its nonzeros in this
      // chunk in shared memory, then every warp streams its rows' from there.
      for (int64_t done = 0; done < longest; done += kStagedNonzeros) {
        for (int32_t e = thread; e < count * kStagedNonzeros; e += static_cast<int32_t>(blockDim.x)) {
          const int32_t r = e / kStagedNonzeros;
          const int64_t* cb = w.chunk_begin + int64_t{w.row_order[first + r]} * (chunks + 1) + chunk;
          const int64_t q = cb[0] + done + (e - r * kStagedNonzeros);
          if (q < cb[1]) staged[e] = w.nonzeros[q];
        }
        __syncthreads();  // the tile (first round) and this round's nonzeros are in place
#pragma unroll
        for (int j = 0; j < kRowsPerWarp; ++j) {
          const int32_t r = warp_row + j * s.warp_rows;
          if (r < count) {  // uniform across the warp
            const int64_t* cb = w.chunk_begin + int64_t{w.row_order[first + r]} * (chunks + 1) + chunk;
            const int64_t rest = cb[1] - cb[0] - done;
            const int32_t n = rest <= 0 ? 0 : rest < kStagedNonzeros ? static_cast<int32_t>(rest) : kStagedNonzeros;
            const TileNonzero* z = staged + r * kStagedNonzeros;
            for (int32_t i = 0; i < n; ++i) {
              const TileNonzero nz = z[i];  // the same address across the warp: a broadcast
              const float* in = tile + base + nz.offset;
#pragma unroll
              for (int o = 0; o < kOutputsPerThread; ++o) acc[j][o] += nz.value * in[o * step];
            }
          }
        }
        __syncthreads();  // every warp is done with this round's nonzeros (and, after the last, the tile)
      }
    }
    const int64_t oh = oh0 + lh;
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; ++j) {
      const int32_t r = warp_row + j * s.warp_rows;
      if (r < count && oh < c.out[1]) {
        const int64_t m = w.row_order[first + r];
        const float b = bias ? bias[m] : 0.0f, slope = slopes ? slopes[m] : 0.0f;
        const int64_t row = ((n * c.out_channels + m) * c.out[0] + od) * c.out[1] * c.out[2] + oh * c.out[2];
        float* out = y + row;
        const float* z = residual ? residual + row : nullptr;
#pragma unroll
        for (int o = 0; o < kOutputsPerThread; ++o) {
          const int64_t ow = ow0 + lw * kOutputsPerThread + o;
          if (ow < c.out[2]) out[ow] = activation::Apply(c.epilogue, acc[j][o] + b + (z ? z[ow] : 0.0f), slope);
        }
      }
    }
  }
}

// One thread per output element (grid-stride), each walking its channel's nonzeros with bounds
// checks. Only for layers whose input tile does not fit shared memory.
__global__ void SparseConvDirect(CallParams p, DevicePlan w, const float* __restrict__ bias,
                                 const float* __restrict__ slopes, const float* __restrict__ residual,
                                 const float* __restrict__ x, float* __restrict__ y, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t index = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; index < total; index += stride) {
    int64_t rest = index;
    int64_t o[kMaxSpatialRank];
    for (int a = kMaxSpatialRank - 1; a >= 0; --a) {
      o[a] = rest % p.out[a];
      rest /= p.out[a];
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
        const int64_t i = o[a] * p.stride[a] - p.pad_begin[a] + t.k[a] * p.dilation[a];
        inside = inside && i >= 0 && i < p.in[a];
        offset = offset * p.in[a] + i;
      }
      if (inside) acc += w.values[j] * x[offset];
    }
    const float start = (bias ? bias[m] : 0.0f) + (residual ? residual[index] : 0.0f);
    y[index] = activation::Apply(p.epilogue, acc + start, slopes ? slopes[m] : 0.0f);
  }
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

CallParams MakeCallParams(const ConvGeometry& g, const Epilogue& epilogue) {
  CallParams p{};
  p.batch = g.batch;
  p.in_channels = g.in_channels;
  p.out_channels = g.out_channels;
  p.in_per_group = g.in_channels_per_group;
  p.out_per_group = g.out_channels_per_group;
  p.in_plane = 1;
  p.out_plane = 1;
  for (int a = 0; a < kMaxSpatialRank; ++a) {
    const AxisGeometry& ax = g.axes[a];
    p.in[a] = ax.in;
    p.out[a] = ax.out;
    p.stride[a] = ax.stride;
    p.dilation[a] = ax.dilation;
    p.pad_begin[a] = ax.pad_begin;
    p.in_plane *= ax.in;
    p.out_plane *= ax.out;
  }
  p.epilogue = epilogue;
  return p;
}

TiledParams MakeTiledParams(const ConvGeometry& g, const Epilogue& epilogue, const DevicePlan& plan) {
  TiledParams p{};
  p.call = MakeCallParams(g, epilogue);
  p.tile = plan.tile;
  p.tiles_w = CeilDiv(g.axes[2].out, plan.tile.out_w);
  p.tiles_h = CeilDiv(g.axes[1].out, plan.tile.out_h);
  p.tiles = p.tiles_w * p.tiles_h * g.axes[0].out;  // <= out_plane, overflow-checked already
  p.row_blocks = plan.row_blocks;
  p.items = g.batch * p.tiles * p.row_blocks;  // <= out_elements
  return p;
}

}  // namespace

CudaPlan PlanCuda(const ConvAttributes& attrs, const SparseWeights& weights, bool allow_tiled) {
  const int k = attrs.spatial_rank();
  int64_t kernel[kMaxSpatialRank] = {1, 1, 1}, stride[kMaxSpatialRank] = {1, 1, 1},
          dilation[kMaxSpatialRank] = {1, 1, 1};
  for (int i = 0; i < k; ++i) {
    kernel[kMaxSpatialRank - k + i] = attrs.kernel_shape[i];
    stride[kMaxSpatialRank - k + i] = attrs.strides[i];
    dilation[kMaxSpatialRank - k + i] = attrs.dilations[i];
  }
  const int64_t rows = weights.out_channels(), nnz = weights.nnz();
  if (rows >= (int64_t{1} << 31)) throw InvalidArgument("too many output channels for the CUDA kernel");
  CudaPlan plan;

  // The tile: a warp's lanes as 4 rows of 8 (1 row of 32 for 1-D layers), 4 outputs each.
  // Groups with fewer output channels than a block holds (depthwise: one) split the block's
  // warps between output channels and spatial sub-tiles, stacked along the height (along the
  // width for 1-D layers), so that no warp idles; when that tile does not fit, one sub-tile.
  TileShape& s = plan.tile;
  s.lanes_w = k == 1 ? kWarpSize : 8;
  const int64_t per_group = rows / attrs.group;
  const int64_t limit = kSharedTileBytes / static_cast<int64_t>(sizeof(float));
  // Extents computed in 64 bits and bounded before they are narrowed (attributes may be huge).
  auto extent = [&](int64_t outputs, int a) {
    const int64_t span = (kernel[a] - 1) * dilation[a] + 1;
    if (span > limit || stride[a] > limit) return limit + 1;
    return (outputs - 1) * stride[a] + span;
  };
  int64_t in_w = 0, in_h = 0, in_d = 0;
  bool fits = false;
  for (int warp_rows : {per_group >= 3 * kRowsPerWarp ? 4 : per_group > kRowsPerWarp ? 2 : 1, kWarpsPerBlock}) {
    s.warp_rows = warp_rows;
    s.stack_w = k == 1;
    const int32_t warp_tiles = kWarpsPerBlock / warp_rows;
    s.out_w = s.lanes_w * kOutputsPerThread * (s.stack_w ? warp_tiles : 1);
    s.out_h = kWarpSize / s.lanes_w * (s.stack_w ? 1 : warp_tiles);
    in_w = extent(s.out_w, 2), in_h = extent(s.out_h, 1), in_d = extent(1, 0);
    fits = in_w <= limit && in_h <= limit && in_d <= limit && in_w * in_h <= limit && in_w * in_h * in_d <= limit;
    if (fits) break;
  }
  const Tap* taps = weights.taps();
  if (!fits || !allow_tiled) {
    plan.tiled = false;
    plan.row_begin.resize(rows + 1);
    for (int64_t m = 0; m < rows; ++m) plan.row_begin[m] = weights.row_begin(m);
    plan.row_begin[rows] = nnz;
    plan.values.assign(weights.values(), weights.values() + nnz);
    plan.taps.assign(taps, taps + nnz);
    return plan;
  }
  plan.tiled = true;
  s.in_w = static_cast<int32_t>(in_w);
  s.in_h = static_cast<int32_t>(in_h);
  s.in_d = static_cast<int32_t>(in_d);
  s.plane = s.in_w * s.in_h * s.in_d;
  int64_t channels = attrs.in_channels_per_group;  // -1 when the node does not say
  for (int64_t j = 0; j < nnz; ++j) channels = std::max<int64_t>(channels, int64_t{taps[j].channel} + 1);
  channels = std::max<int64_t>(channels, 1);
  s.chunk_channels = static_cast<int32_t>(std::max<int64_t>(1, std::min<int64_t>(channels, limit / s.plane)));
  s.chunks = static_cast<int32_t>(CeilDiv(channels, s.chunk_channels));

  // Nonzeros stay in CSR order (by row, then column: channel-major), so each chunk of a row is
  // one contiguous run.
  plan.nonzeros.resize(nnz);
  plan.chunk_begin.resize(static_cast<size_t>(rows) * (s.chunks + 1));
  for (int64_t m = 0; m < rows; ++m) {
    int64_t j = weights.row_begin(m);
    const int64_t end = weights.row_end(m);
    for (int32_t chunk = 0; chunk <= s.chunks; ++chunk) {
      while (j < end && taps[j].channel < int64_t{chunk} * s.chunk_channels) ++j;
      plan.chunk_begin[m * (s.chunks + 1) + chunk] = chunk == s.chunks ? end : j;
    }
  }
  for (int64_t j = 0; j < nnz; ++j) {
    const Tap& t = taps[j];
    const int64_t offset = (int64_t{t.channel} % s.chunk_channels) * s.plane +
                           (t.k[0] * dilation[0] * s.in_h + t.k[1] * dilation[1]) * s.in_w + t.k[2] * dilation[2];
    plan.nonzeros[j] = TileNonzero{weights.values()[j], static_cast<int32_t>(offset)};  // < kSharedTileBytes / 4
  }

  // Rows of each group by nonzero count, largest first, in blocks of warp_rows x kRowsPerWarp:
  // a block's warps then get rows of similar length and finish their chunk together.
  const int64_t rows_per_block = int64_t{s.warp_rows} * kRowsPerWarp;
  plan.row_order.resize(rows);
  for (int64_t g = 0; g < attrs.group; ++g) {
    int32_t* first = plan.row_order.data() + g * per_group;
    for (int64_t i = 0; i < per_group; ++i) first[i] = static_cast<int32_t>(g * per_group + i);
    std::stable_sort(first, first + per_group, [&](int32_t a, int32_t b) {
      return weights.row_end(a) - weights.row_begin(a) > weights.row_end(b) - weights.row_begin(b);
    });
    for (int64_t i = 0; i < per_group; i += rows_per_block) {
      plan.block_first.push_back(static_cast<int32_t>(g * per_group + i));
    }
  }
  plan.block_first.push_back(static_cast<int32_t>(rows));
  return plan;
}

LaunchShape ShapeLaunch(const ConvGeometry& g, const DevicePlan& plan, int64_t max_blocks) {
  LaunchShape shape;
  shape.tiled = plan.tiled;
  if (g.out_elements == 0) return shape;
  max_blocks = std::max<int64_t>(1, std::min(max_blocks, kMaxGridX));
  if (plan.tiled) {
    shape.items = MakeTiledParams(g, Epilogue{}, plan).items;
    shape.blocks = std::min(shape.items, max_blocks);
  } else {
    constexpr int64_t kThreads = 256;
    shape.items = g.out_elements;
    shape.blocks = std::min(CeilDiv(g.out_elements, kThreads), max_blocks);
  }
  return shape;
}

cudaError_t LaunchSparseConv(const ConvGeometry& g, const Epilogue& epilogue, const DevicePlan& plan,
                             const float* bias, const float* slopes, const float* residual, const float* x,
                             float* y, cudaStream_t stream, int64_t max_blocks) {
  const LaunchShape shape = ShapeLaunch(g, plan, max_blocks);
  if (shape.blocks == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(shape.blocks));
  if (plan.tiled) {
    const TiledParams p = MakeTiledParams(g, epilogue, plan);
    const size_t shared = TiledSharedBytes(plan.tile);
    ONNX_SPARSIFY_LAUNCH(SparseConvTiled, grid, dim3(kThreadsPerBlock), shared, stream, p, plan, bias, slopes, residual, x, y);
  } else {
    const CallParams p = MakeCallParams(g, epilogue);
    ONNX_SPARSIFY_LAUNCH(SparseConvDirect, grid, dim3(256), 0, stream, p, plan, bias, slopes, residual, x, y, g.out_elements);
  }
  return cudaGetLastError();
}

}  // namespace onnx_sparsify::cuda
