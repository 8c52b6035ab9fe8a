// A SparseConv weight in CSR form, validated and decoded once when a kernel is created; shared
// by the CPU and CUDA kernels (each packs it further for itself: cpu_weights.h, PlanCuda).
#pragma once
#include <cstdint>
#include <vector>

#include "conv_params.h"

namespace onnx_sparsify {

// One nonzero's position inside the C/group x kernel_shape block of its output channel:
// the CSR column decoded, kernel indices right-aligned into 3 axes.
struct Tap {
  int32_t channel;
  int32_t k[kMaxSpatialRank];
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
  // Validates the CSR against the attributes and decodes it: each row's nonzeros sorted by
  // column, columns decoded into taps. Throws InvalidArgument naming the first problem found.
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
  // The highest input channel (within its group) any nonzero reads, -1 for none.
  int64_t max_channel() const { return max_channel_; }

 private:
  std::vector<int64_t> row_begin_;
  std::vector<float> values_;
  std::vector<Tap> taps_;
  int64_t max_channel_ = -1;
};

// Validates one call's input shape against the attributes and the weight and returns the
// call's geometry; throws InvalidArgument naming the problem.
ConvGeometry PrepareCall(const ConvAttributes& attrs, const SparseWeights& weights,
                         const std::vector<int64_t>& x_shape);

}  // namespace onnx_sparsify
