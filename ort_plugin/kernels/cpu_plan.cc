#include "kernels/cpu_plan.h"

#include "kernels/jit_walks.h"
#include "kernels/sparse_weights.h"

namespace onnx_sparsify {

std::vector<int64_t> TapOffsets(const CpuWeights& weights, const PhaseLayout& l) {
  std::vector<int64_t> offsets(static_cast<size_t>(weights.nnz()));
  const PhaseTap* taps = weights.phase_taps();
  for (int64_t j = 0; j < weights.nnz(); ++j) {
    const PhaseTap& t = taps[j];
    const int64_t phase = (int64_t{t.residue[0]} * l.stride[1] + t.residue[1]) * l.stride[2] + t.residue[2];
    const int64_t inner = (int64_t{t.t[0]} * l.extent[1] + t.t[1]) * l.extent[2] + t.t[2];
    offsets[j] = t.channel * l.channel_stride + phase * l.phase_plane + inner;
  }
  return offsets;
}

bool SameOffsets(const PhaseLayout& a, const PhaseLayout& b) {
  return a.stride == b.stride && a.extent == b.extent && a.phase_plane == b.phase_plane;
}

CpuPlan CpuPlan::Make(const ConvAttributes& attrs, const CpuWeights& weights, CpuIsa isa, CpuStrategy strategy,
                      const std::vector<int64_t>& x_shape, bool any_size) {
  CpuPlan plan;
  plan.isa_ = isa;
  plan.strategy_ = strategy;
  if (x_shape.empty()) return plan;
  const ConvGeometry g = PrepareCall(attrs, weights, x_shape);
  plan.layout_ = g.layout;
  plan.offsets_ = TapOffsets(weights, g.layout);
  const bool planes = UsesPlanePath(g.layout.phases == 1, weights.nnz(), g.out_channels, g.out_plane);
  if (strategy != CpuStrategy::kGenerated || (!any_size && (planes || g.out_plane < kJitMinPositions))) return plan;
  const PhaseLayout layout = JitLayout(g);
  // The windows walk reads another channel stride: its code addresses that layout.
  const std::vector<int64_t> offsets = layout.channel_stride == g.layout.channel_stride
                                           ? plan.offsets_
                                           : TapOffsets(weights, layout);
  plan.code_ = JitTiles::Build(isa, weights, offsets, layout.channel_stride, g.out_channels_per_group,
                               JitOutStride(g));
  return plan;
}

const JitTiles* CpuPlan::CodeFor(const ConvGeometry& g) const {
  if (!code_ || !Serves(g)) return nullptr;
  if (code_->out_stride() != JitOutStride(g) || code_->in_stride() != JitLayout(g).channel_stride) return nullptr;
  return code_.get();
}

}  // namespace onnx_sparsify
