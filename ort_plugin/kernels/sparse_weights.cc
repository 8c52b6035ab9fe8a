#include "sparse_weights.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>

#include "errors.h"

namespace onnx_sparsify {

template <typename Index>
SparseWeights SparseWeights::Pack(const CsrView<Index>& csr, const ConvAttributes& attrs, int64_t in_channels) {
  const int64_t nnz = csr.num_values;
  if (csr.num_col_indices != nnz) {
    throw InvalidArgument("W_col_indices has " + std::to_string(csr.num_col_indices) + " entries but W_values has " +
                          std::to_string(nnz));
  }
  if (csr.num_row_ptr < 2) {
    throw InvalidArgument("W_row_ptr must have M+1 >= 2 entries, got " + std::to_string(csr.num_row_ptr));
  }
  const int64_t rows = csr.num_row_ptr - 1;
  if (rows % attrs.group != 0) {
    throw InvalidArgument("W_row_ptr describes " + std::to_string(rows) + " output channels, not divisible by group " +
                          std::to_string(attrs.group));
  }
  if (csr.row_ptr[0] != 0) {
    throw InvalidArgument("W_row_ptr[0] must be 0, got " + std::to_string(static_cast<int64_t>(csr.row_ptr[0])));
  }
  for (int64_t m = 0; m < rows; ++m) {
    if (csr.row_ptr[m + 1] < csr.row_ptr[m]) {
      throw InvalidArgument("W_row_ptr decreases at position " + std::to_string(m + 1) + " (" +
                            std::to_string(static_cast<int64_t>(csr.row_ptr[m])) + " then " +
                            std::to_string(static_cast<int64_t>(csr.row_ptr[m + 1])) + ")");
    }
  }
  if (static_cast<int64_t>(csr.row_ptr[rows]) != nnz) {
    throw InvalidArgument("W_row_ptr ends at " + std::to_string(static_cast<int64_t>(csr.row_ptr[rows])) +
                          " but W_values has " + std::to_string(nnz) + " values");
  }

  const int64_t kernel_volume = attrs.kernel_volume();
  const int k = attrs.spatial_rank();
  SparseWeights w;
  w.row_begin_.assign(csr.row_ptr, csr.row_ptr + rows + 1);
  w.values_.resize(nnz);
  w.taps_.resize(nnz);
  std::vector<int64_t> order;
  for (int64_t m = 0; m < rows; ++m) {
    const int64_t begin = csr.row_ptr[m], end = csr.row_ptr[m + 1];
    order.resize(end - begin);
    std::iota(order.begin(), order.end(), begin);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return csr.col_indices[a] < csr.col_indices[b]; });
    for (int64_t j = begin; j < end; ++j) {
      const int64_t src = order[j - begin];
      const int64_t col = csr.col_indices[src];
      if (col < 0) {
        throw InvalidArgument("W_col_indices[" + std::to_string(src) + "] = " + std::to_string(col) + " is negative");
      }
      if (j > begin && col == static_cast<int64_t>(csr.col_indices[order[j - begin - 1]])) {
        throw InvalidArgument("row " + std::to_string(m) + " of the CSR weight repeats column " + std::to_string(col));
      }
      const int64_t channel = col / kernel_volume;
      if (channel >= (int64_t{1} << 30)) {
        throw InvalidArgument("W_col_indices[" + std::to_string(src) + "] = " + std::to_string(col) +
                              " is out of range for kernel_shape of volume " + std::to_string(kernel_volume));
      }
      Tap tap{static_cast<int32_t>(channel), {0, 0, 0}};
      int64_t rest = col % kernel_volume;
      for (int i = k - 1; i >= 0; --i) {
        tap.k[kMaxSpatialRank - k + i] = static_cast<int32_t>(rest % attrs.kernel_shape[i]);
        rest /= attrs.kernel_shape[i];
      }
      w.taps_[j] = tap;
      w.values_[j] = csr.values[src];
      w.max_channel_ = std::max(w.max_channel_, channel);
    }
  }
  w.phase_taps_.resize(nnz);
  for (int64_t j = 0; j < nnz; ++j) {
    const Tap& tap = w.taps_[j];
    PhaseTap& pt = w.phase_taps_[j];
    pt.channel = tap.channel;
    for (int a = 0; a < kMaxSpatialRank; ++a) {
      const int i = a - (kMaxSpatialRank - k);  // attribute index, < 0 for the padding axes
      const int64_t stride = i >= 0 ? attrs.strides[i] : 1, dilation = i >= 0 ? attrs.dilations[i] : 1;
      const int64_t pos = tap.k[a] * dilation;  // < 2^48 by the attribute bounds
      if (pos >= (int64_t{1} << 31)) {
        throw InvalidArgument("dilated kernel extent " + std::to_string(pos) + " on axis " + std::to_string(i) +
                              " exceeds 2^31");
      }
      // Strides longer than the padded input behave as a stride equal to it (one output), so
      // residues are kept below 2^31 too: pos < padded size.
      pt.residue[a] = static_cast<int32_t>(pos % stride);
      pt.t[a] = static_cast<int32_t>(pos / stride);
    }
  }
  w.plans_[kBlocksInL2] = w.PlanChannelBlocks(attrs, 48);
  w.plans_[kBlocksBeyondL2] = w.PlanChannelBlocks(attrs, 16);
  if (in_channels > 0) w.CheckInputChannels(in_channels, attrs.group);
  return w;
}

SparseWeights::BlockPlan SparseWeights::PlanChannelBlocks(const ConvAttributes& attrs,
                                                         int64_t min_nonzeros_per_block) const {
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
  const int64_t channels = max_channel_ + 1;
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
    int64_t j = row_begin_[m];
    for (int64_t b = 0; b <= plan.blocks; ++b) {
      const int64_t limit = b == plan.blocks ? INT64_MAX : b * plan.block;
      while (j < row_begin_[m + 1] && taps_[j].channel < limit) ++j;
      plan.begin[m * (plan.blocks + 1) + b] = j;
    }
  }
  return plan;
}

void SparseWeights::CheckInputChannels(int64_t in_channels, int64_t group) const {
  const int64_t per_group = in_channels / group;
  if (max_channel_ >= per_group) {
    throw InvalidArgument("a column index addresses input channel " + std::to_string(max_channel_) +
                          " of its group, but X has " + std::to_string(in_channels) + " channels in " +
                          std::to_string(group) + " group(s), so columns must be below C/group * prod(kernel_shape)");
  }
}

template SparseWeights SparseWeights::Pack<int32_t>(const CsrView<int32_t>&, const ConvAttributes&, int64_t);
template SparseWeights SparseWeights::Pack<int64_t>(const CsrView<int64_t>&, const ConvAttributes&, int64_t);

}  // namespace onnx_sparsify
