#include "sparse_weights.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>
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
  if (in_channels > 0) w.CheckInputChannels(in_channels, attrs.group);
  return w;
}

void SparseWeights::CheckInputChannels(int64_t in_channels, int64_t group) const {
  const int64_t per_group = in_channels / group;
  if (max_channel_ >= per_group) {
    throw InvalidArgument("a column index addresses input channel " + std::to_string(max_channel_) +
                          " of its group, but X has " + std::to_string(in_channels) + " channels in " +
                          std::to_string(group) + " group(s), so columns must be below C/group * prod(kernel_shape)");
  }
}

ConvGeometry PrepareCall(const ConvAttributes& attrs, const SparseWeights& weights,
                         const std::vector<int64_t>& x_shape) {
  ConvGeometry g = ResolveGeometry(attrs, x_shape, weights.out_channels());
  weights.CheckInputChannels(g.in_channels, g.group);
  return g;
}

template SparseWeights SparseWeights::Pack<int32_t>(const CsrView<int32_t>&, const ConvAttributes&, int64_t);
template SparseWeights SparseWeights::Pack<int64_t>(const CsrView<int64_t>&, const ConvAttributes&, int64_t);

}  // namespace onnx_sparsify
