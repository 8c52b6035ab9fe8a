// Input staging: how the CPU kernel lays X out before its tiles or generated code read it.
// - StageInput: the whole of X into the phase layout (PhaseLayout: padded, split into stride
//   phases, planes aligned), in parallel, or X itself where it already has that layout;
// - StageGroup: one channel group into the calling thread's buffer, right before use (small
//   groups: the padded copy never leaves the cache);
// - StageWindows: for 1-D rows, the padded inputs of a run of outputs, one window per channel,
//   into the calling thread's buffer (the generated code's windows walk, jit_walks.h).
// Every staged buffer ends in kLanes zeroed floats of slack, for whole-vector loads.
#pragma once
#include <cstdint>

#include "kernels/cpu_call.h"

namespace onnx_sparsify {

// The phase buffer of every image and channel (or x itself when the layout needs no copy).
const float* StageInput(const IsaKernels& k, const ConvGeometry& g, const float* x, const ParallelFor& parallel_for,
                        const ScratchAllocator& scratch);

// The phase buffer of channel group `group` of image n, in the calling thread's buffer (valid
// until its next StageGroup).
const float* StageGroup(const IsaKernels& k, const ConvGeometry& g, const float* x, int64_t n, int64_t group);

// For a layout of single rows (extent 1 on the first two axes, unit stride): padded positions
// [q0, q0 + stride) of every channel of group `group` of image n, channel c at c * stride from
// the returned pointer (cache-line aligned; `stride` a multiple of kLanes), in the calling
// thread's buffer (valid until its next StageWindows).
const float* StageWindows(const ConvGeometry& g, const float* x, int64_t n, int64_t group, int64_t q0, int64_t stride);

}  // namespace onnx_sparsify
