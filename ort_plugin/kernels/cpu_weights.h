// The CPU kernel's packing of a SparseWeights (sparse_conv_cpu.cc), made once per kernel: each
// nonzero's place in the phase-decomposed input, and the input-channel block plans. The CUDA
// kernel packs the same SparseWeights its own way (PlanCuda).
#pragma once
#include <cstdint>
#include <vector>

#include "conv_params.h"
#include "sparse_weights.h"

namespace onnx_sparsify {

// The CPU kernel's layout facts, which the packing here is sized for and the rewriter's cost
// model reads through onnx_sparsify._core:
// output positions per tile (8 AVX-512 accumulators of 16 floats);
inline constexpr int64_t kCpuTilePositions = 128;
// the plane path (shifted plane updates, no copy) where an output channel has at most this many
// nonzeros on average and output planes have at least this many positions (measured crossovers).
inline constexpr int64_t kPlanePathNonzerosPerChannel = 6;
inline constexpr int64_t kPlanePathMinPlane = 1024;
// Whether a layer takes the plane path: unit strides, nnz nonzeros over out_channels, output
// planes (one image, one channel) of out_plane positions.
inline bool UsesPlanePath(bool unit_strides, int64_t nnz, int64_t out_channels, int64_t out_plane) {
  return unit_strides && nnz <= kPlanePathNonzerosPerChannel * out_channels && out_plane >= kPlanePathMinPlane;
}

// A nonzero's place in the phase-decomposed input: per axis, the stride residue of its dilated
// kernel position and its index inside that phase. Depends only on the attributes.
struct PhaseTap {
  int32_t channel;
  int32_t residue[kMaxSpatialRank];
  int32_t t[kMaxSpatialRank];
};

class CpuWeights : public SparseWeights {
 public:
  CpuWeights() = default;
  CpuWeights(SparseWeights weights, const ConvAttributes& attrs);

  const PhaseTap* phase_taps() const { return phase_taps_.data(); }
  // Input-channel blocking: each row's nonzeros split into channel_blocks() runs of
  // channel_block() input channels, small enough for their input window to stay in L1, in one
  // of two plans: kBlocksInL2 for inputs that fit in L2 (blocks of at least 48 nonzeros per
  // row, so that reloading partial sums pays), kBlocksBeyondL2 for larger ones (at least 16:
  // there a window that leaves L1 comes from L3).
  static constexpr int kBlocksInL2 = 0, kBlocksBeyondL2 = 1;
  int64_t channel_block(int plan = kBlocksInL2) const { return plans_[plan].block; }
  int64_t channel_blocks(int plan = kBlocksInL2) const { return plans_[plan].blocks; }
  int64_t block_begin(int64_t m, int64_t b, int plan = kBlocksInL2) const {
    return plans_[plan].begin[m * (plans_[plan].blocks + 1) + b];
  }

 private:
  struct BlockPlan {
    int64_t block = 1;
    int64_t blocks = 1;
    std::vector<int64_t> begin;
  };
  BlockPlan PlanChannelBlocks(const ConvAttributes& attrs, int64_t min_nonzeros_per_block) const;

  std::vector<PhaseTap> phase_taps_;
  BlockPlan plans_[2];
};

}  // namespace onnx_sparsify
