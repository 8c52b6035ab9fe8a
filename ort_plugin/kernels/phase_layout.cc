#include "phase_layout.h"

#include <algorithm>

#include "conv_params.h"
#include "errors.h"

namespace onnx_sparsify {

PhaseLayout ResolvePhaseLayout(const ConvGeometry& g, int64_t kernel_volume) {
  PhaseLayout l;
  int64_t in_plane = 1;  // checked by ResolveGeometry
  for (const AxisGeometry& ax : g.axes) in_plane *= ax.in;
  bool unit = true;
  for (int a = 0; a < kMaxSpatialRank; ++a) {
    const AxisGeometry& ax = g.axes[a];
    l.stride[a] = std::min(ax.stride, ax.padded());
    l.extent[a] = ax.padded() / l.stride[a] + (ax.padded() % l.stride[a] != 0);
    l.phases = CheckedMul(l.phases, l.stride[a], "strided input");
    unit = unit && ax.stride == 1;
  }
  for (int a = 0; a < kMaxSpatialRank; ++a) l.phase_plane = CheckedMul(l.phase_plane, l.extent[a], "strided input");
  // Alignment to cache lines (kPlaneAlignment floats), for the tiles' loads: with a tile's
  // positions aligned, a nonzero whose offset in its channel is a multiple of 16 loads whole
  // cache lines, which Intel cores serve about twice as fast as loads split across two lines
  // (docs/performance.md, rows 12 and 15).
  // - In a padded copy, rows are padded to whole lines when that adds at most 1/8 to the
  //   positions computed (R1: 58 -> 64, R3's phases: 15 -> 16), so that every kernel column
  //   whose offset is a whole number of rows (column 0; with stride 2, columns 0 and 1) loads
  //   whole lines.
  // - Phase planes start on a line in any copy, and 1x1 layers get a copy for that alone when
  //   their planes would not (then every load is aligned). Planes under 16 floats are left as
  //   they are.
  const bool copy = g.has_padding || !unit;
  if (copy && kernel_volume > 1 && l.extent[2] >= kPlaneAlignment) {
    const int64_t row = CheckedAdd(l.extent[2], (kPlaneAlignment - l.extent[2] % kPlaneAlignment) % kPlaneAlignment,
                                   "strided input");
    if (row * 8 <= l.extent[2] * 9) {
      l.phase_plane = CheckedMul(l.phase_plane / l.extent[2], row, "strided input");
      l.extent[2] = row;
    }
  }
  if ((copy || kernel_volume == 1) && l.phase_plane >= kPlaneAlignment) {
    l.phase_plane = CheckedAdd(l.phase_plane, (kPlaneAlignment - l.phase_plane % kPlaneAlignment) % kPlaneAlignment,
                               "strided input");
  }
  l.channel_stride = CheckedMul(l.phases, l.phase_plane, "strided input");
  CheckedMul(CheckedMul(g.batch, g.in_channels, "strided input"), l.channel_stride, "strided input");
  l.copy = g.has_padding || !unit || l.channel_stride != in_plane;
  return l;
}

}  // namespace onnx_sparsify
