#include "kernels/cpu_loops.h"

#include <algorithm>

namespace onnx_sparsify {

void StoreTile(const IsaKernels& k, const ConvGeometry& g, const float* acc, int64_t p, int64_t count, float* y,
               const float* residual, const Epilogue* epilogue, float slope) {
  const PhaseLayout& l = g.layout;
  const AxisGeometry &a0 = g.axes[0], &a1 = g.axes[1], &a2 = g.axes[2];
  const int64_t e12 = l.extent[1] * l.extent[2];
  int64_t o0 = p / e12, rest = p % e12;
  int64_t o1 = rest / l.extent[2], o2 = rest % l.extent[2];
  for (int64_t done = 0; done < count;) {
    const int64_t span = std::min(count - done, l.extent[2] - o2);  // to the end of this virtual row
    if (o0 < a0.out && o1 < a1.out && o2 < a2.out) {
      const int64_t n = std::min(span, a2.out - o2);
      float* dst = y + (o0 * a1.out + o1) * a2.out + o2;
      const float* src = acc + done;
      if (residual) {
        const float* r = residual + (o0 * a1.out + o1) * a2.out + o2;
        for (int64_t i = 0; i < n; ++i) dst[i] = src[i] + r[i];
        if (epilogue) k.epilogue(*epilogue, slope, dst, n);
      } else {
        for (int64_t i = 0; i < n; ++i) dst[i] = src[i];  // short rows: a call to memcpy costs more
      }
    }
    done += span;
    o2 = 0;
    if (++o1 == l.extent[1]) {
      o1 = 0;
      ++o0;
    }
  }
}

void ComputeBlock(const CpuCall& call, const TaskInput& input, int block_plan, int64_t n, Span channels,
                  Span positions) {
  const ConvGeometry& g = call.g;
  const CpuWeights& w = call.weights;
  const PhaseLayout& l = g.layout;
  // Virtual positions are output indices when the phase extents equal the output sizes.
  const bool direct = l.extent[1] == g.axes[1].out && l.extent[2] == g.axes[2].out;
  const int64_t blocks = w.channel_blocks(block_plan);
  const Epilogue* epilogue = call.epilogue();
  alignas(64) float partial[kChannelBlock * kTile];
  for (int64_t p = positions.begin; p < positions.end; p += kTile) {
    const int valid = static_cast<int>(std::min<int64_t>(kTile, positions.end - p));
    for (int64_t m0 = channels.begin; m0 < channels.end; m0 += kChannelBlock) {
      const int64_t m1 = std::min(channels.end, m0 + kChannelBlock);
      for (int64_t b = 0; b < blocks; ++b) {
        const bool final = b == blocks - 1;
        for (int64_t m = m0; m < m1; ++m) {
          const int64_t begin = w.block_begin(m, b, block_plan), nnz = w.block_begin(m, b + 1, block_plan) - begin;
          float* acc = partial + (m - m0) * kTile;
          const int64_t plane = (n * g.out_channels + m) * g.out_plane;
          float* out = call.y + plane;
          float* dst = final && direct ? out + p : acc;
          // Z joins the first block where it is laid out as the tile (direct), else StoreTile.
          const float* init = b > 0 ? acc : (call.residual && direct ? call.residual + plane + p : nullptr);
          const bool epilogue_here = direct || !call.residual;
          call.k.tile(input.in + p, call.offsets + begin, w.values() + begin, nnz,
                      b == 0 && call.bias ? call.bias[m] : 0.0f, init, valid, input.whole, dst,
                      final && epilogue_here ? epilogue : nullptr, call.attrs.slope(m));
          if (final && !direct) {
            StoreTile(call.k, g, acc, p, valid, out, call.residual ? call.residual + plane : nullptr,
                      epilogue_here ? nullptr : epilogue, call.attrs.slope(m));
          }
        }
      }
    }
  }
}

namespace {

// The output indices o in [0, out) whose input index o + shift lies in [0, in).
Span ClipRange(int64_t shift, int64_t in, int64_t out) {
  const int64_t lo = std::max<int64_t>(0, -shift);
  return {lo, std::max(lo, std::min(out, in - shift))};
}

}  // namespace

void ComputePlanes(const CpuCall& call, const float* x, const ParallelFor& parallel_for) {
  const ConvGeometry& g = call.g;
  const CpuWeights& w = call.weights;
  const AxisGeometry &a0 = g.axes[0], &a1 = g.axes[1], &a2 = g.axes[2];
  const int64_t in_plane = a0.in * a1.in * a2.in;
  parallel_for(g.batch * g.out_channels, [&](int64_t task) {
    const int64_t m = task % g.out_channels, n = task / g.out_channels;
    const int64_t group = m / g.out_channels_per_group;
    const float* image = x + (n * g.in_channels + group * g.in_channels_per_group) * in_plane;
    float* out = call.y + task * g.out_plane;
    const float b = call.bias ? call.bias[m] : 0.0f;
    if (call.residual) {
      const float* r = call.residual + task * g.out_plane;
      for (int64_t i = 0; i < g.out_plane; ++i) out[i] = b + r[i];
    } else {
      std::fill(out, out + g.out_plane, b);
    }
    for (int64_t j = w.row_begin(m); j < w.row_end(m); ++j) {
      const Tap& t = w.taps()[j];
      const int64_t s0 = t.k[0] * a0.dilation - a0.pad_begin, s1 = t.k[1] * a1.dilation - a1.pad_begin;
      const int64_t s2 = t.k[2] * a2.dilation - a2.pad_begin;
      const Span r0 = ClipRange(s0, a0.in, a0.out), r1 = ClipRange(s1, a1.in, a1.out), r2 = ClipRange(s2, a2.in, a2.out);
      if (r1.size() <= 0 || r2.size() <= 0) continue;
      const float* plane = image + t.channel * in_plane;
      for (int64_t o0 = r0.begin; o0 < r0.end; ++o0) {
        call.k.axpy_2d(w.values()[j], plane + ((o0 + s0) * a1.in + r1.begin + s1) * a2.in + r2.begin + s2, a2.in,
                       out + (o0 * a1.out + r1.begin) * a2.out + r2.begin, a2.out, r1.size(), r2.size());
      }
    }
    call.k.epilogue(call.attrs.epilogue, call.attrs.slope(m), out, g.out_plane);
  });
}

}  // namespace onnx_sparsify
