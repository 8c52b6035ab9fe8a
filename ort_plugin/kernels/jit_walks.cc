#include "kernels/jit_walks.h"

#include <algorithm>

#include "kernels/cpu_loops.h"

namespace onnx_sparsify {
namespace {

// A generated block's biases when the layer has none.
alignas(64) constexpr float kNoBias[kJitMaxChannels] = {};

const float* BlockBias(const CpuCall& call, const JitTiles::Block& block) {
  return call.bias ? call.bias + block.m_begin : kNoBias;
}

// kFlat, kRows: the block writes conv + bias into Y, then Z and the epilogue are applied to what
// it wrote.
void ComputeRowsJit(const CpuCall& call, const JitTiles& code, const JitTiles::Block& block, JitWalk walk,
                    const TaskInput& input, int64_t n, Span row_span, Span col_span) {
  const ConvGeometry& g = call.g;
  const PhaseLayout& l = g.layout;
  const int64_t lanes = code.lanes();
  const bool flat = walk == JitWalk::kFlat;
  // Row r is row r % per_slice of slice r / per_slice; strides in elements.
  const int64_t per_slice = flat ? 1 : g.axes[1].out;
  const int64_t in_row = flat ? 0 : l.extent[2], out_row = flat ? 0 : g.axes[2].out;
  const int64_t in_slice = flat ? 0 : l.extent[1] * l.extent[2], out_slice = flat ? 0 : g.axes[1].out * g.axes[2].out;
  const int64_t columns = col_span.size();
  const int64_t vectors = (columns + lanes - 1) / lanes;
  const int64_t tail = columns - (vectors - 1) * lanes;
  const Epilogue* epilogue = call.epilogue();
  const int64_t block_plane = (n * g.out_channels + block.m_begin) * g.out_plane;
  for (int64_t r = row_span.begin; r < row_span.end;) {
    const int64_t slice = r / per_slice, i0 = r % per_slice;
    const int64_t rows = std::min(row_span.end - r, per_slice - i0);  // within one slice: uniform strides
    const int64_t in_pos = slice * in_slice + i0 * in_row + col_span.begin;
    const int64_t out_pos = slice * out_slice + i0 * out_row + col_span.begin;
    r += rows;
    if (!input.whole && in_pos + (rows - 1) * in_row + vectors * lanes > input.length) {
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t p = in_pos + i * in_row;
        ComputeBlock(call, input, CpuWeights::kBlocksInL2, n, {block.m_begin, block.m_end}, {p, p + columns});
      }
      continue;
    }
    const JitArgs args = MakeJitArgs(input.in + in_pos, block.values, call.y + block_plane + out_pos,
                                     BlockBias(call, block), rows, vectors, in_row, out_row, tail);
    block.fn(&args);
    if (!call.residual && !epilogue) continue;
    for (int64_t m = block.m_begin; m < block.m_end; ++m) {
      const int64_t plane = (n * g.out_channels + m) * g.out_plane;
      for (int64_t i = 0; i < rows; ++i) {
        float* dst = call.y + plane + out_pos + i * out_row;
        if (call.residual) {
          const float* z = call.residual + plane + out_pos + i * out_row;
          for (int64_t c = 0; c < columns; ++c) dst[c] += z[c];
        }
        if (epilogue) call.k.epilogue(*epilogue, call.attrs.slope(m), dst, columns);
      }
    }
  }
}

// kVirtual: a tile of kTile virtual positions at a time into a buffer, which StoreTile copies
// into Y with Z and the epilogue.
void ComputeVirtualJit(const CpuCall& call, const JitTiles& code, const JitTiles::Block& block,
                       const TaskInput& input, int64_t n, Span positions) {
  const ConvGeometry& g = call.g;
  const int64_t lanes = code.lanes();
  alignas(64) float acc[kJitMaxChannels * kTile];
  const Epilogue* epilogue = call.epilogue();
  for (int64_t p = positions.begin; p < positions.end; p += kTile) {
    const int64_t valid = std::min<int64_t>(kTile, positions.end - p);
    const int64_t vectors = (valid + lanes - 1) / lanes;
    if (!input.whole && p + vectors * lanes > input.length) {
      ComputeBlock(call, input, CpuWeights::kBlocksInL2, n, {block.m_begin, block.m_end}, {p, p + valid});
      continue;
    }
    const JitArgs args = MakeJitArgs(input.in + p, block.values, acc, BlockBias(call, block), 1, vectors, 0, 0, lanes);
    block.fn(&args);
    for (int64_t m = block.m_begin; m < block.m_end; ++m) {
      float* a = acc + (m - block.m_begin) * kTile;
      const int64_t plane = (n * g.out_channels + m) * g.out_plane;
      if (epilogue && !call.residual) call.k.epilogue(*epilogue, call.attrs.slope(m), a, valid);
      StoreTile(call.k, g, a, p, valid, call.y + plane, call.residual ? call.residual + plane : nullptr,
                call.residual ? epilogue : nullptr, call.attrs.slope(m));
    }
  }
}

}  // namespace

int64_t JitWindowStride(const ConvGeometry& g) {
  const int64_t span = kJitTaskPositions + (g.axes[2].kernel - 1) * g.axes[2].dilation;  // < 2^32 (Parse)
  return (span + kLanes - 1) / kLanes * kLanes;
}

JitWalk JitWalkFor(const ConvGeometry& g) {
  const PhaseLayout& l = g.layout;
  if (l.copy && l.phases == 1 && l.extent[0] * l.extent[1] == 1 &&
      g.in_channels_per_group <= kWindowBufferBytes / int64_t{sizeof(float)} / JitWindowStride(g)) {
    return JitWalk::kWindows;
  }
  if (l.extent[1] == g.axes[1].out && l.extent[2] == g.axes[2].out) return JitWalk::kFlat;
  return (g.axes[2].out + kLanes - 1) / kLanes * kLanes <= l.extent[2] ? JitWalk::kRows : JitWalk::kVirtual;
}

const char* JitWalkName(JitWalk walk) {
  switch (walk) {
    case JitWalk::kFlat: return "flat";
    case JitWalk::kRows: return "rows";
    case JitWalk::kVirtual: return "virtual";
    case JitWalk::kWindows: return "windows";
  }
  return "virtual";
}

PhaseLayout JitLayout(const ConvGeometry& g) {
  PhaseLayout l = g.layout;
  if (JitWalkFor(g) == JitWalk::kWindows) l.channel_stride = JitWindowStride(g);
  return l;
}

int64_t JitOutStride(const ConvGeometry& g) { return JitWalkFor(g) == JitWalk::kVirtual ? kTile : g.out_plane; }

JitGrid JitGridFor(const ConvGeometry& g, JitWalk walk, int64_t length) {
  switch (walk) {
    case JitWalk::kFlat: return {1, g.out_plane};
    case JitWalk::kRows: return {g.axes[0].out * g.axes[1].out, g.axes[2].out};
    case JitWalk::kVirtual: return {1, length};
    case JitWalk::kWindows: return {1, g.axes[2].out};
  }
  return {1, length};
}

void ComputeJit(const CpuCall& call, const JitTiles& code, const JitTiles::Block& block, JitWalk walk,
                const TaskInput& input, int64_t n, Span rows, Span columns) {
  if (walk == JitWalk::kVirtual) {
    ComputeVirtualJit(call, code, block, input, n, columns);
  } else {
    ComputeRowsJit(call, code, block, walk, input, n, rows, columns);
  }
}

}  // namespace onnx_sparsify
