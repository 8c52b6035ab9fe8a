// The CPU kernel's compiled hot functions, one variant per instruction set (tiles_avx512.cc,
// tiles_avx2.cc, tiles_baseline.cc), gathered in an IsaKernels table that a call selects.
// Knows nothing of ONNX Runtime.
#pragma once
#include <cstdint>

#include "kernels/conv_params.h"
#include "kernels/cpu_isa.h"
#include "kernels/cpu_weights.h"

namespace onnx_sparsify {

inline constexpr int kLanes = 16;                                  // floats per AVX-512 vector
inline constexpr int kTile = static_cast<int>(kCpuTilePositions);  // virtual positions per tile
inline constexpr int kMaxVectors = kTile / kLanes;                 // accumulators per AVX-512 tile

// out[0, valid) = f(start + sum_j values[j] * in[offsets[j] + t]), where start is bias + init[t]
// (init: a partial sum, or the residual input Z) or the bias alone when init is null, and f is the
// epilogue (none when null; `slope` is PRelu's for this channel). Nothing at or past `valid` is
// written, and nothing there is read unless `whole`: then `in` may be read up to the end of the
// vector holding position valid - 1 (the buffer has kLanes floats of slack), which the AVX-512
// tile does with plain loads instead of masked ones.
using TileFn = void (*)(const float* in, const int64_t* offsets, const float* values, int64_t nnz, float bias,
                        const float* init, int valid, bool whole, float* out, const Epilogue* epilogue, float slope);

// One instruction set's variants of the hot functions.
struct IsaKernels {
  // Fills one channel's phase buffer (PhaseLayout) from X's plane.
  void (*fill_plane)(const ConvGeometry& g, const float* x, float* dst);
  TileFn tile;
  // y[r * y_stride + i] += w * x[r * x_stride + i] for r < rows, i < cols.
  void (*axpy_2d)(float w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t rows, int64_t cols);
  // Applies the epilogue to n values in place.
  void (*epilogue)(const Epilogue& e, float slope, float* y, int64_t n);
};

const IsaKernels& BaselineKernels();
const IsaKernels& Avx2Kernels();
const IsaKernels& Avx512Kernels();

// The table for `isa` (the CPU must support it).
const IsaKernels& KernelsFor(CpuIsa isa);

}  // namespace onnx_sparsify
