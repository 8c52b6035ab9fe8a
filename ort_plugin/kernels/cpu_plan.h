// The prepared plan of one SparseConv layer on the CPU, made once when a kernel is created (the
// ORT kernel) or per call (the pybind module), by the one function CpuPlan::Make: the instruction
// set and strategy it runs, each nonzero's offset in the input layout of the shape it was made
// for, and the code generated for that layout. It answers whether it serves a call's geometry.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "kernels/conv_params.h"
#include "kernels/cpu_isa.h"
#include "kernels/cpu_weights.h"
#include "kernels/jit_tiles.h"

namespace onnx_sparsify {

// Each nonzero's element offset in the phase-decomposed input of `layout`.
std::vector<int64_t> TapOffsets(const CpuWeights& weights, const PhaseLayout& layout);

// Whether offsets computed for one layout hold for the other.
bool SameOffsets(const PhaseLayout& a, const PhaseLayout& b);

class CpuPlan {
 public:
  // A plan running `isa` with `strategy`. For an X of shape `x_shape` (empty: none known; then
  // every call computes its offsets), validated with PrepareCall (throws InvalidArgument), the
  // offsets and, for CpuStrategy::kGenerated, the code: unless `any_size`, only where the output
  // planes are large enough for it to pay (kJitMinPositions) and the layer takes no plane path.
  static CpuPlan Make(const ConvAttributes& attrs, const CpuWeights& weights, CpuIsa isa, CpuStrategy strategy,
                      const std::vector<int64_t>& x_shape, bool any_size = false);

  CpuIsa isa() const { return isa_; }
  CpuStrategy strategy() const { return strategy_; }
  // Whether the offsets were made for the layout of `g`.
  bool Serves(const ConvGeometry& g) const { return layout_ && SameOffsets(*layout_, g.layout); }
  const std::vector<int64_t>& offsets() const { return offsets_; }
  // The code for calls of geometry `g`: null where none was made, or where `g` is not served
  // or walks another layout (the windows walk depends on X's channels, which may be symbolic).
  const JitTiles* CodeFor(const ConvGeometry& g) const;
  const JitTiles* code() const { return code_.get(); }

 private:
  CpuIsa isa_ = CpuIsa::kBaseline;
  CpuStrategy strategy_ = CpuStrategy::kLoops;
  std::optional<PhaseLayout> layout_;
  std::vector<int64_t> offsets_;
  std::unique_ptr<JitTiles> code_;
};

}  // namespace onnx_sparsify
