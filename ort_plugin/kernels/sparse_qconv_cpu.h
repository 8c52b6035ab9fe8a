// SparseQLinearConv on the CPU (docs/operator.md): a quantized Conv over the nonzeros of an int8
// weight, with ONNX Runtime's QLinearConv arithmetic (quantization.h). Shares SparseConv's
// geometry, phase layout and offsets (CpuPlan). This first kernel subtracts the input's zero point
// into an int16 copy, pads it in the phase layout (padding then reads 0), and accumulates each
// output row in int32 with compiled loops; the vector kernels (VNNI) come on top of it.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/conv_params.h"
#include "kernels/cpu_call.h"
#include "kernels/cpu_plan.h"
#include "kernels/cpu_weights.h"
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

 private:
  CpuWeights weights_;
  QuantParams quant_;
  std::vector<int8_t> values_;
  std::vector<int32_t> bias_;
};

// Y = SparseQLinearConv(X). X and Y are uint8 or int8 (quant().is_signed) tensors of `geometry`
// (PrepareCall's). `plan` is CpuPlan::Make's for these weights (its offsets serve any element
// type); where it does not serve the geometry, offsets are computed for this call.
void SparseQConvCpu(const CpuPlan& plan, const QuantizedWeights& weights, const ConvGeometry& geometry, const void* x, void* y, const ParallelFor& parallel_for,
                    const ScratchAllocator& scratch);

}  // namespace onnx_sparsify
