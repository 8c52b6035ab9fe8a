// How generated blocks (jit_tiles.h) walk a layer's outputs, and the walk that drives one block
// over a task's outputs, with Z and the epilogue applied after it, still in cache.
#pragma once
#include <cstdint>

#include "kernels/cpu_call.h"
#include "kernels/jit_tiles.h"

namespace onnx_sparsify {

// Output positions per task with generated code, and per window (kWindows).
inline constexpr int64_t kJitTaskPositions = 512;
// Output positions per channel below which no code is generated: each block's code then runs
// for a few vectors per call, and fetching it costs more than it saves (R4, 7x7: 0.99x of the
// AVX-512 tile at 70% zeros, 1.07x at 90%).
inline constexpr int64_t kJitMinPositions = 128;
// kWindows: a group's windows take at most this many bytes, else the walk is kRows.
inline constexpr int64_t kWindowBufferBytes = 8 << 20;

// kFlat: virtual positions are output positions, the plane is one row. kRows: output rows (the
// first two spatial axes flattened), the last vector of each row masked; taken where whole
// vectors per row waste no more than the phase buffer's own row padding does. kVirtual: tiles of
// virtual positions into a buffer, then StoreTile drops the positions outside the output (small
// planes: R4's rows of 7 in rows of 9). kWindows: a single padded input row per channel (1-D
// layers, unit stride) is not copied whole; each task pads the inputs of kJitTaskPositions
// outputs into its thread's buffer, one window per channel (JitWindowStride apart), and runs the
// group's blocks on it: no pass over all of X, and the blocks read their input from L1/L2, not L3
// (A1: 13% of its time was the copy; docs/performance.md row 28).
enum class JitWalk { kFlat, kRows, kVirtual, kWindows };

JitWalk JitWalkFor(const ConvGeometry& g);
const char* JitWalkName(JitWalk walk);

// kWindows: floats per channel in a window buffer, a whole number of cache lines holding the
// inputs of kJitTaskPositions outputs (the last vector's read included).
int64_t JitWindowStride(const ConvGeometry& g);
// The layout the generated code for `g` reads: g.layout, or for kWindows one window per channel.
PhaseLayout JitLayout(const ConvGeometry& g);
// The output stride (floats between channels) the generated code for `g` writes with.
int64_t JitOutStride(const ConvGeometry& g);

// The outputs a generated block walks, as rows x columns: kFlat one row of the plane, kRows and
// kWindows the output rows, kVirtual one row of the `length` virtual positions.
struct JitGrid {
  int64_t rows, columns;
};
JitGrid JitGridFor(const ConvGeometry& g, JitWalk walk, int64_t length);

// Block `block` of `code` for image n over `rows` and `columns` of its JitGrid, reading `input`.
// Rows whose whole vectors would read past a channel's end (input not `whole`) run ComputeBlock.
void ComputeJit(const CpuCall& call, const JitTiles& code, const JitTiles::Block& block, JitWalk walk,
                const TaskInput& input, int64_t n, Span rows, Span columns);

}  // namespace onnx_sparsify
