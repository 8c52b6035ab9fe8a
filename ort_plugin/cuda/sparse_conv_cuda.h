// SparseConv on CUDA devices: the host-side plan (built once per node, ORT-free) and the
// launcher. Compiled by nvcc for the plugin, and as plain C++ by the test suite's CUDA emulation
// (tests/cuda_emulation/), which runs the same kernels on the CPU.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/conv_params.h"
#include "kernels/sparse_weights.h"

namespace onnx_sparsify::cuda {

// The tiled kernel's fixed shape (docs/performance.md, "CUDA kernel").
inline constexpr int kWarpSize = 32;
inline constexpr int kWarpsPerBlock = 4;
inline constexpr int kThreadsPerBlock = kWarpSize * kWarpsPerBlock;
inline constexpr int kRowsPerWarp = 4;                                  // output channels each warp accumulates
inline constexpr int kOutputsPerThread = 4;                             // consecutive outputs along the last axis
inline constexpr int64_t kSharedTileBytes = 32 * 1024;                  // input tile per block, at most
inline constexpr int kStagedNonzeros = 64;                              // per output channel and round
inline constexpr int64_t kMaxGridX = 2147483647;                        // CUDA's limit on gridDim.x

// One nonzero as the tiled kernel streams it: its value and its element offset inside the
// shared-memory input tile (channel within the chunk, then the dilated kernel position).
struct TileNonzero {
  float value;
  int32_t offset;
};

// The input tile one block stages per chunk of input channels. A warp's 32 lanes are laid out
// as 32 / lanes_w rows of lanes_w lanes, each lane computing kOutputsPerThread consecutive
// outputs along the last axis. The block's warps split into warp_rows groups, each taking its
// own output channels, and 4 / warp_rows spatial sub-tiles stacked along the height (along the
// width when stack_w). All of it follows from the attributes and the weight, so the offsets
// are computed once per node.
struct TileShape {
  int32_t lanes_w = 32;           // lanes along the last axis
  int32_t warp_rows = 4;          // warps taking different output channels: 1, 2 or 4
  bool stack_w = false;           // sub-tiles side by side along the width (1-D layers)
  int32_t out_w = 0, out_h = 0;   // output positions the block's tile covers (1 along the first axis)
  int32_t in_d = 1, in_h = 1, in_w = 1;  // the input tile (halo included) one channel needs
  int32_t plane = 0;              // in_d * in_h * in_w
  int32_t chunk_channels = 1;     // input channels per staged chunk
  int32_t chunks = 0;             // chunks covering the channels the weight reads
};

// The tiled kernel's dynamic shared memory: the staged nonzeros (kStagedNonzeros per output
// channel of a block), then the input tile of one chunk. At most 8 + 32 KB, under the 48 KB a
// kernel may use without opting in.
inline size_t TiledSharedBytes(const TileShape& s) {
  return static_cast<size_t>(s.warp_rows) * kRowsPerWarp * kStagedNonzeros * sizeof(TileNonzero) +
         static_cast<size_t>(s.chunk_channels) * s.plane * sizeof(float);
}

// Host-side, built once per node (PlanCuda): everything the kernels read, ready to upload.
struct CudaPlan {
  bool tiled = false;  // false: the input tile of one channel does not fit shared memory
  TileShape tile;
  // Tiled kernel: nonzeros per row, ordered by channel; chunk_begin[m * (chunks + 1) + c] is
  // row m's first nonzero in chunk c. Rows of each group sorted by nonzero count (largest
  // first) and cut into blocks of warp_rows x kRowsPerWarp rows of one group: block b owns
  // row_order[block_first[b] .. block_first[b + 1]).
  std::vector<TileNonzero> nonzeros;
  std::vector<int64_t> chunk_begin;
  std::vector<int32_t> row_order;
  std::vector<int32_t> block_first;
  // Direct kernel (used when !tiled): row_begin [M+1], values and taps [nnz].
  std::vector<int64_t> row_begin;
  std::vector<float> values;
  std::vector<Tap> taps;
};

// Packs `weights` for the CUDA kernels: for the tiled kernel when one channel's input tile fits
// shared memory (and `allow_tiled`; tests clear it to run the direct kernel), else for the
// direct kernel. Throws InvalidArgument if the output channels exceed 32-bit indices.
CudaPlan PlanCuda(const ConvAttributes& attrs, const SparseWeights& weights, bool allow_tiled = true);

// A plan's arrays in device memory (or host memory under the emulation).
struct DevicePlan {
  bool tiled = false;
  TileShape tile;
  int64_t row_blocks = 0;
  const TileNonzero* nonzeros = nullptr;
  const int64_t* chunk_begin = nullptr;
  const int32_t* row_order = nullptr;
  const int32_t* block_first = nullptr;
  const int64_t* row_begin = nullptr;
  const float* values = nullptr;
  const Tap* taps = nullptr;
};

// Copies the plan's arrays with `upload(const void* data, size_t bytes) -> void*` (cudaMalloc
// and cudaMemcpy in the plugin; the caller owns what it returns) and returns their view.
template <typename Upload>
DevicePlan UploadPlan(const CudaPlan& plan, Upload&& upload) {
  auto put = [&](const auto& v) {
    using T = typename std::decay_t<decltype(v)>::value_type;
    return static_cast<const T*>(v.empty() ? nullptr : upload(v.data(), v.size() * sizeof(T)));
  };
  DevicePlan d;
  d.tiled = plan.tiled;
  d.tile = plan.tile;
  if (plan.tiled) {
    d.row_blocks = static_cast<int64_t>(plan.block_first.size()) - 1;
    d.nonzeros = put(plan.nonzeros);
    d.chunk_begin = put(plan.chunk_begin);
    d.row_order = put(plan.row_order);
    d.block_first = put(plan.block_first);
  } else {
    d.row_begin = put(plan.row_begin);
    d.values = put(plan.values);
    d.taps = put(plan.taps);
  }
  return d;
}

// How the launcher would launch a call: the kernel, its grid and the work items the grid walks.
struct LaunchShape {
  bool tiled = false;
  int64_t blocks = 0;  // gridDim.x
  int64_t items = 0;   // work items (tiled: image x spatial tile x row block; direct: outputs)
};
LaunchShape ShapeLaunch(const ConvGeometry& geometry, const DevicePlan& plan, int64_t max_blocks = kMaxGridX);

// Y = epilogue(conv(X, W) + B + Z) on `stream`; X, Y, bias, slopes and residual (Z, Y's shape)
// are device pointers, bias and residual may be null, slopes (PRelu's, one per output channel: ConvAttributes::ChannelSlopes) is null
// without a PRelu step. Asynchronous: no allocation, no synchronization. `max_blocks` caps gridDim.x (the
// kernels walk their work with a grid-stride loop; tests lower it to exercise that loop).
// Returns the launch status.
cudaError_t LaunchSparseConv(const ConvGeometry& geometry, const Epilogue& epilogue, const DevicePlan& plan,
                             const float* bias, const float* slopes, const float* residual, const float* x,
                             float* y, cudaStream_t stream, int64_t max_blocks = kMaxGridX);

}  // namespace onnx_sparsify::cuda
