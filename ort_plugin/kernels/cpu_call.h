// What every task of one CPU kernel call shares, and the ranges a task covers: the arguments of
// the loops (cpu_loops.h) and the generated code's walks (jit_walks.h).
#pragma once
#include <cstdint>
#include <functional>

#include "kernels/conv_params.h"
#include "kernels/cpu_tiles.h"
#include "kernels/cpu_weights.h"

namespace onnx_sparsify {

// Runs body(i) for every i in [0, total), possibly in parallel; body never throws.
using ParallelFor = std::function<void(int64_t total, const std::function<void(int64_t)>& body)>;

// Returns n floats of scratch memory valid for the rest of the call (an arena, ideally: a fresh
// large allocation per call costs page faults).
using ScratchAllocator = std::function<float*(size_t n)>;

// [begin, end).
struct Span {
  int64_t begin, end;
  int64_t size() const { return end - begin; }
};

// One call's operands. y and residual (Z, laid out as Y) may be shifted for a task that
// addresses outputs from an offset (the windows walk).
struct CpuCall {
  const ConvAttributes& attrs;
  const CpuWeights& weights;
  const ConvGeometry& g;
  const IsaKernels& k;
  const int64_t* offsets;  // each nonzero's element offset in the input a task reads (TapOffsets)
  const float* bias;       // M values, or null
  const float* residual;   // Z, or null
  float* y;
  const Epilogue* epilogue() const { return attrs.epilogue.empty() ? nullptr : &attrs.epilogue; }
};

// The input one task reads: a group's channels in the phase layout, each `length` virtual
// positions long; `whole`: a padded copy with slack, so that whole vectors may be read past the
// end of a channel's last row.
struct TaskInput {
  const float* in;
  bool whole;
  int64_t length;
};

}  // namespace onnx_sparsify
