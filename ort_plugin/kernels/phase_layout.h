// The CPU kernel's view of one call's input (sparse_conv_cpu.cc): padded, split into stride
// phases and aligned to cache lines. Part of ConvGeometry; ResolveGeometry fills it in.
#pragma once
#include <array>
#include <cstdint>

#include "contract.h"

namespace onnx_sparsify {

struct ConvGeometry;

// Floats per cache line: phase planes of the CPU kernel's padded copy start on one.
inline constexpr int64_t kPlaneAlignment = 16;

// Padded and split into one phase per stride residue on each axis, so that every nonzero reads
// contiguous elements.
struct PhaseLayout {
  std::array<int64_t, kMaxSpatialRank> stride{1, 1, 1};  // min(stride, padded size): same outputs
  // Elements per phase along each axis: ceil(padded / stride), the last axis rounded up to
  // whole cache lines in a copy where that is cheap (ResolvePhaseLayout).
  std::array<int64_t, kMaxSpatialRank> extent{1, 1, 1};
  int64_t phases = 1;                                     // prod(stride)
  int64_t phase_plane = 1;  // prod(extent), rounded up to kPlaneAlignment in a copy and for 1x1
  int64_t channel_stride = 1;                             // phases * phase_plane
  bool copy = false;  // false when X itself has this layout (no padding, unit strides; 1x1: aligned planes)
};

// The layout for geometry `g` (its axes, batch and channels resolved) and a kernel of
// `kernel_volume` taps; throws InvalidArgument where a size overflows.
PhaseLayout ResolvePhaseLayout(const ConvGeometry& g, int64_t kernel_volume);

}  // namespace onnx_sparsify
