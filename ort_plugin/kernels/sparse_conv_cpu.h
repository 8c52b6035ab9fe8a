// SparseConv on the CPU: direct convolution over the nonzeros, output positions as the vector
// dimension. Knows nothing of ONNX Runtime; the caller supplies the thread pool.
//
// Layout: a call stages X once into a zero-padded, phase-decomposed buffer (one phase per stride
// residue on each axis; PhaseLayout), unless X already has that layout (no padding, unit
// strides). There every output position of a channel is a "virtual position"
// p = (o0 * E1 + o1) * E2 + o2 (E = phase extents), and every nonzero (c, k) reads element
// p + offset(c, k): a contiguous, unit-stride load whatever the stride, dilation and padding. A
// channel's virtual row includes a few positions outside the output (o1 >= O1 or o2 >= O2); they
// are computed and dropped.
//
// Tiles: for one output channel and up to kTile consecutive virtual positions, the accumulators
// stay in registers while the channel's nonzeros stream by (one broadcast and one multiply-add per
// vector and nonzero). Generated code turns this around: one accumulator per channel of a block,
// each input vector loaded once per block (jit_tiles.h).
//
// A call's path through the files: CpuPlan (cpu_plan.h: offsets and generated code, made once)
// -> ChooseCpuPath (here: which of five paths runs) -> input staging (input_staging.h) -> the
// tiles of the plan's instruction set (cpu_loops.h over tiles_*.cc) or its generated code
// (jit_walks.h over jit_tiles.h).
#pragma once
#include <cstdint>
#include <functional>

#include "kernels/conv_params.h"
#include "kernels/cpu_call.h"
#include "kernels/cpu_plan.h"
#include "kernels/cpu_weights.h"

namespace onnx_sparsify {

// Runs body(i) for i in [0, total) on the calling thread.
void SerialFor(int64_t total, const std::function<void(int64_t)>& body);

// How one call runs:
// kPlanes     unit strides, very few nonzeros per channel: shifted plane updates straight from X
//             (ComputePlanes; no copy).
// kWindows    generated code over per-task windows of single-row inputs (jit_walks.h, kWindows).
// kGroups     small channel groups: each task pads one group into its thread's buffer, then runs
//             the generated code, or the tiles, over it.
// kGenerated  X staged whole (StageInput), then the generated code in tasks of about
//             kJitTaskPositions outputs.
// kTiles      X staged whole, then the tiles in tasks of channel blocks x position blocks.
enum class CpuPath { kPlanes, kWindows, kGroups, kGenerated, kTiles };

const char* CpuPathName(CpuPath path);

// The path for a call of geometry `g`, given the plan's code for it (CpuPlan::CodeFor; null for
// none). The one place the choice is made.
CpuPath ChooseCpuPath(const ConvGeometry& g, const CpuWeights& weights, const JitTiles* code);

// Y = epilogue(conv(X, W) + B + Z). X, Y and Z are dense NCHW-style tensors matching `geometry`
// (Z, the residual input, has Y's shape); bias is null or holds M values; residual is null or
// Z; `geometry` comes from PrepareCall. `plan` is CpuPlan::Make's for these weights; where it
// does not serve the geometry, the offsets are computed for this call and the loops run.
// Throws only if `scratch` does.
void SparseConvCpu(const CpuPlan& plan, const ConvAttributes& attrs, const CpuWeights& weights, const float* bias,
                   const float* residual, const ConvGeometry& geometry, const float* x, float* y,
                   const ParallelFor& parallel_for, const ScratchAllocator& scratch);

}  // namespace onnx_sparsify
