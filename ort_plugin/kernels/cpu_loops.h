// The compiled-loop paths of the CPU kernel: output channels over tiles of virtual positions
// (ComputeBlock), and the plane path for very sparse unit-stride layers (ComputePlanes).
#pragma once
#include <cstdint>

#include "kernels/cpu_call.h"

namespace onnx_sparsify {

// Output channels per loop task, at most (one tile of partial sums each).
inline constexpr int64_t kChannelBlock = 64;

// Copies a tile of virtual positions [p, p + count) into the output plane `y` of one channel,
// dropping positions outside the output; with a residual plane (Z's, laid out as the output),
// adds it and applies the epilogue, which the tile could not (it must come after the residual).
void StoreTile(const IsaKernels& k, const ConvGeometry& g, const float* acc, int64_t p, int64_t count, float* y,
               const float* residual, const Epilogue* epilogue, float slope);

// Computes output `channels` (of one group) over virtual `positions` of
// image n, from `input` (the channels' group). With input-channel blocking (`block_plan`, a
// CpuWeights plan), each tile runs block by block over a few channels at once, keeping partial
// sums, so the input window read by a block stays in L1 across the channels.
void ComputeBlock(const CpuCall& call, const TaskInput& input, int block_plan, int64_t n, Span channels,
                  Span positions);

// Unit strides and very few nonzeros per channel (UsesPlanePath): each output plane starts at
// the bias and takes one scaled, shifted copy of an input plane per nonzero, read straight from X
// with the padding clipped away. No padded copy, no wasted positions.
void ComputePlanes(const CpuCall& call, const float* x, const ParallelFor& parallel_for);

}  // namespace onnx_sparsify
