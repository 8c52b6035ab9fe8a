// SparseQLinearConv on the CPU (docs/operator.md): a quantized Conv over the nonzeros of an int8
// weight, with ONNX Runtime's QLinearConv arithmetic (quantization.h). Shares SparseConv's
// geometry, phase layout and offsets (CpuPlan). The input's zero point is subtracted into an int16
// copy, padded in the phase layout (padding then reads 0). Then, by instruction set:
// - baseline (every CPU): each output row summed in int32 with compiled loops;
// - avx512vnni: the input channels interleaved in quads (4 uint8 per position, qconv_vnni.h) and
//   the weight packed in quads of the same 4 channels, so that one vpdpbusd adds 4 products into
//   each of 16 positions; with the generated strategy, code made per layer (jit_tiles.h) runs
//   blocks of output channels, each input vector loaded once per block.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/conv_params.h"
#include "kernels/cpu_call.h"
#include "kernels/cpu_plan.h"
#include "kernels/cpu_weights.h"
#include "kernels/jit_tiles.h"
#include "kernels/quantization.h"

namespace onnx_sparsify {

// The int8 weight: CpuWeights over the nonzeros (each an integer in [-128, 127], exact as a float),
// their int8 copy, the quantization and the int32 bias. Made once per kernel.
class QuantizedWeights {
 public:
  QuantizedWeights() = default;
  // Throws InvalidArgument where a value is not an int8 integer, the bias has the wrong size, or
  // an output's int32 sum could overflow (sum of |w| x 255 + |bias| beyond 2^31 - 1).
  QuantizedWeights(CpuWeights weights, QuantParams quant, std::vector<int32_t> bias);

  const CpuWeights& weights() const { return weights_; }
  const QuantParams& quant() const { return quant_; }
  const int8_t* values() const { return values_.data(); }
  const int32_t* bias() const { return bias_.empty() ? nullptr : bias_.data(); }
  // Output channel m's sum of its weights' nonzeros (W minus its zero point).
  int32_t row_sum(int64_t m) const { return row_sums_[static_cast<size_t>(m)]; }

 private:
  CpuWeights weights_;
  QuantParams quant_;
  std::vector<int8_t> values_;
  std::vector<int32_t> bias_;
  std::vector<int32_t> row_sums_;
};

// The weight in quads of 4 input channels for one phase layout: for output channel m, terms
// [row_begin[m], row_begin[m + 1]), each the dword offset of a (quad, tap) position in the quad
// input (quad * channel_stride + the tap's place in the phase planes) and the 4 int8 weights of
// that quad's channels at that tap (0 where a channel has none), sorted by offset.
struct QuadTerms {
  std::vector<int64_t> row_begin, offsets;
  std::vector<uint32_t> dwords;
};

// The prepared plan of a SparseQLinearConv layer, made once per kernel (or per call from Python)
// by Make: SparseConv's CpuPlan (instruction set, offsets) and, for avx512vnni, the quad terms,
// each output channel's start value and, with the generated strategy, the code.
class QuantizedPlan {
 public:
  // As CpuPlan::Make (strategy: CpuStrategy::kGenerated makes code for avx512vnni, else the
  // loops run); x_shape empty where X's shape is not known.
  static QuantizedPlan Make(const ConvAttributes& attrs, const QuantizedWeights& weights, CpuIsa isa,
                            CpuStrategy strategy, const std::vector<int64_t>& x_shape);
  const CpuPlan& cpu() const { return cpu_; }
  // The quad terms for calls of geometry g: null unless the plan runs VNNI and serves g.
  const QuadTerms* QuadsFor(const ConvGeometry& g) const;
  // The code for calls of geometry g: null unless made and g is served.
  const JitTiles* CodeFor(const ConvGeometry& g) const { return code_ && cpu_.Serves(g) ? code_.get() : nullptr; }
  // The VNNI sums' start values: B minus the uint8 zero point's share (sparse_qconv_cpu.cc).
  const std::vector<int32_t>& inits() const { return inits_; }

 private:
  CpuPlan cpu_;
  QuadTerms quads_;
  std::vector<int32_t> inits_;
  std::unique_ptr<JitTiles> code_;
};

// The quad terms of `weights` for a layout with channel_stride positions per channel, given each
// nonzero's offset in it (TapOffsets).
QuadTerms PackQuads(const QuantizedWeights& weights, const std::vector<int64_t>& offsets, int64_t channel_stride);

// Y = SparseQLinearConv(X). X and Y are uint8 or int8 (quant().is_signed) tensors of `geometry`
// (PrepareCall's). `plan` is QuantizedPlan::Make's for these weights; where it does not serve the
// geometry, offsets (and quad terms) are computed for this call.
void SparseQConvCpu(const QuantizedPlan& plan, const QuantizedWeights& weights, const ConvGeometry& geometry,
                    const void* x, void* y, const ParallelFor& parallel_for, const ScratchAllocator& scratch);

}  // namespace onnx_sparsify
