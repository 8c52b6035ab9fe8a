#include "cpu_weights.h"

#include <algorithm>
#include <cstdint>
#include <utility>

namespace onnx_sparsify {

CpuWeights::CpuWeights(SparseWeights weights, const ConvAttributes& attrs) : SparseWeights(std::move(weights)) {
  const int k = attrs.spatial_rank();
  phase_taps_.resize(static_cast<size_t>(nnz()));
  for (int64_t j = 0; j < nnz(); ++j) {
    const Tap& tap = taps()[j];
    PhaseTap& pt = phase_taps_[static_cast<size_t>(j)];
    pt.channel = tap.channel;
    for (int a = 0; a < kMaxSpatialRank; ++a) {
      const int i = a - (kMaxSpatialRank - k);  // attribute index, < 0 for the padding axes
      const int64_t stride = i >= 0 ? attrs.strides[i] : 1, dilation = i >= 0 ? attrs.dilations[i] : 1;
      // Below 2^31: ConvAttributes::Parse bounds the dilated kernel extent.
      const int64_t pos = tap.k[a] * dilation;
      pt.residue[a] = static_cast<int32_t>(pos % stride);
      pt.t[a] = static_cast<int32_t>(pos / stride);
    }
  }
  plans_[kBlocksInL2] = PlanChannelBlocks(attrs, 48);
  plans_[kBlocksBeyondL2] = PlanChannelBlocks(attrs, 16);
}

CpuWeights::BlockPlan CpuWeights::PlanChannelBlocks(const ConvAttributes& attrs, int64_t min_nonzeros_per_block) const {
  // A channel's input window for one tile: the kernel's rows, each a tile plus the kernel's
  // width (and a vector of slack for unaligned loads).
  constexpr int64_t kL1Budget = 24 * 1024;
  // Sizes come from the model: products saturate (a heuristic needs no exact huge values).
  const auto mul = [](int64_t a, int64_t b) {
    int64_t r = 0;
    return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
  };
  const int64_t width = attrs.kernel_shape.back(), dilation = attrs.dilations.back();
  const int64_t rows_per_channel = attrs.kernel_volume() / width;
  const int64_t row_bytes = mul(kCpuTilePositions + (width - 1) * dilation + 16, int64_t{sizeof(float)});
  const int64_t window = mul(rows_per_channel, row_bytes);
  const int64_t channels = max_channel() + 1;
  const int64_t rows = out_channels();
  const int64_t fit = std::max<int64_t>(1, kL1Budget / std::max<int64_t>(1, window));
  const int64_t wanted = mul(mul(min_nonzeros_per_block, channels), rows);
  const int64_t work = nnz() > 0 ? wanted / nnz() + (wanted % nnz() != 0) : channels;
  BlockPlan plan;
  plan.block = std::max<int64_t>({1, fit, work});
  // As many blocks as whole blocks of that size fit, evened out: a last, short block would be
  // a pass of its own (partial sums stored and reloaded) for a handful of nonzeros.
  plan.blocks = std::max<int64_t>(1, channels / plan.block);
  plan.block = (channels + plan.blocks - 1) / plan.blocks;
  plan.begin.resize(rows * (plan.blocks + 1));
  for (int64_t m = 0; m < rows; ++m) {
    int64_t j = row_begin(m);
    for (int64_t b = 0; b <= plan.blocks; ++b) {
      const int64_t limit = b == plan.blocks ? INT64_MAX : b * plan.block;
      while (j < row_end(m) && taps()[j].channel < limit) ++j;
      plan.begin[m * (plan.blocks + 1) + b] = j;
    }
  }
  return plan;
}


}  // namespace onnx_sparsify
