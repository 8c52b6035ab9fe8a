// A SparseConv weight in CSR form, validated and pre-packed once when a kernel is created.
#pragma once
#include <cstdint>
#include <vector>

#include "conv_params.h"

namespace onnx_sparsify {

// The CPU kernel's layout facts (sparse_conv_cpu.cc), which the packing here is sized for and
// the rewriter's cost model reads through onnx_sparsify._core:
// output positions per tile (8 AVX-512 accumulators of 16 floats);
inline constexpr int64_t kCpuTilePositions = 128;
// the plane path (shifted plane updates, no copy) where an output channel has at most this many
// nonzeros on average and output planes have at least this many positions (measured crossovers).
inline constexpr int64_t kPlanePathNonzerosPerChannel = 6;
inline constexpr int64_t kPlanePathMinPlane = 1024;

// One nonzero's position inside the C/group x kernel_shape block of its output channel:
// the CSR column decoded, kernel indices right-aligned into 3 axes.
struct Tap {
  int32_t channel;
  int32_t k[kMaxSpatialRank];
};

// A nonzero's place in the phase-decomposed input (see sparse_conv_cpu.cc): per axis, the
// stride residue of its dilated kernel position and its index inside that phase. Depends only
// on the attributes, so it is computed once.
struct PhaseTap {
  int32_t channel;
  int32_t residue[kMaxSpatialRank];
  int32_t t[kMaxSpatialRank];
};

// Read-only view of the CSR inputs; Index is int32_t or int64_t.
template <typename Index>
struct CsrView {
  const float* values;
  int64_t num_values;
  const Index* col_indices;
  int64_t num_col_indices;
  const Index* row_ptr;
  int64_t num_row_ptr;
};

class SparseWeights {
 public:
  // Validates the CSR against the attributes and packs it: each row's nonzeros sorted by column,
  // columns decoded into taps. Throws InvalidArgument naming the first problem found.
  // in_channels is X's channel count when known at creation, or -1; when known, every column
  // is checked against it here, otherwise CheckInputChannels() does it once per call.
  template <typename Index>
  static SparseWeights Pack(const CsrView<Index>& csr, const ConvAttributes& attrs, int64_t in_channels);

  // Throws unless every column fits in the C/group x kernel_shape block for this input.
  void CheckInputChannels(int64_t in_channels, int64_t group) const;

  int64_t out_channels() const { return static_cast<int64_t>(row_begin_.size()) - 1; }
  int64_t nnz() const { return static_cast<int64_t>(values_.size()); }
  int64_t row_begin(int64_t m) const { return row_begin_[m]; }
  int64_t row_end(int64_t m) const { return row_begin_[m + 1]; }
  const float* values() const { return values_.data(); }
  const Tap* taps() const { return taps_.data(); }
  const PhaseTap* phase_taps() const { return phase_taps_.data(); }
  // Input-channel blocking for the CPU kernel: each row's nonzeros split into channel_blocks()
  // runs of channel_block() input channels, small enough for their input window to stay in L1,
  // in one of two plans: kBlocksInL2 for inputs that fit in L2 (blocks of at least 48 nonzeros
  // per row, so that reloading partial sums pays), kBlocksBeyondL2 for larger ones (at least 16:
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

  std::vector<int64_t> row_begin_;
  std::vector<float> values_;
  std::vector<Tap> taps_;
  std::vector<PhaseTap> phase_taps_;
  int64_t max_channel_ = -1;
  BlockPlan plans_[2];
};

}  // namespace onnx_sparsify
