#include "kernels/input_staging.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace onnx_sparsify {
namespace {

// p rounded up to a cache line (kLanes floats).
float* AlignToLine(float* p) {
  constexpr uintptr_t kLine = kLanes * sizeof(float);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + kLine - 1) & ~(kLine - 1));
}

// Padded positions [q0, q0 + count) of one channel's row `src` (axis a), zeros outside X.
void FillWindow(const AxisGeometry& a, const float* src, int64_t q0, int64_t count, float* dst) {
  const int64_t begin = std::clamp<int64_t>(a.pad_begin - q0, 0, count);
  const int64_t end = std::clamp<int64_t>(a.pad_begin + a.in - q0, begin, count);
  std::fill(dst, dst + begin, 0.0f);
  if (end > begin) {
    std::memcpy(dst + begin, src + q0 + begin - a.pad_begin, static_cast<size_t>(end - begin) * sizeof(float));
  }
  std::fill(dst + end, dst + count, 0.0f);
}

int64_t InPlane(const ConvGeometry& g) { return g.axes[0].in * g.axes[1].in * g.axes[2].in; }

const float* GroupOf(const ConvGeometry& g, const float* x, int64_t n, int64_t group) {
  return x + (n * g.in_channels + group * g.in_channels_per_group) * InPlane(g);
}

}  // namespace

const float* StageInput(const IsaKernels& k, const ConvGeometry& g, const float* x, const ParallelFor& parallel_for,
                        const ScratchAllocator& scratch) {
  const PhaseLayout& l = g.layout;
  if (!l.copy) return x;
  const int64_t in_plane = InPlane(g);
  const int64_t copied = g.batch * g.in_channels * l.channel_stride;
  float* buffer = scratch(static_cast<size_t>(copied + kLanes));
  std::fill(buffer + copied, buffer + copied + kLanes, 0.0f);
  if (!g.has_padding && l.phases == 1) {
    // Copied for alignment only (PhaseLayout::phase_plane): each plane whole, then its gap,
    // in tasks of a few planes (one plane is often a few hundred floats).
    constexpr int64_t kPlanesPerTask = 64;
    const int64_t planes = g.batch * g.in_channels;
    parallel_for((planes + kPlanesPerTask - 1) / kPlanesPerTask, [&](int64_t task) {
      const int64_t end = std::min(planes, (task + 1) * kPlanesPerTask);
      for (int64_t plane = task * kPlanesPerTask; plane < end; ++plane) {
        float* dst = buffer + plane * l.channel_stride;
        std::memcpy(dst, x + plane * in_plane, static_cast<size_t>(in_plane) * sizeof(float));
        std::memset(dst + in_plane, 0, static_cast<size_t>(l.channel_stride - in_plane) * sizeof(float));
      }
    });
  } else {
    parallel_for(g.batch * g.in_channels, [&](int64_t plane) {
      k.fill_plane(g, x + plane * in_plane, buffer + plane * l.channel_stride);
    });
  }
  return buffer;
}

const float* StageGroup(const IsaKernels& k, const ConvGeometry& g, const float* x, int64_t n, int64_t group) {
  const PhaseLayout& l = g.layout;
  thread_local std::vector<float> buffer;
  buffer.resize(static_cast<size_t>(g.in_channels_per_group * l.channel_stride + kLanes));
  std::fill(buffer.end() - kLanes, buffer.end(), 0.0f);
  const float* x_group = GroupOf(g, x, n, group);
  const int64_t in_plane = InPlane(g);
  for (int64_t c = 0; c < g.in_channels_per_group; ++c) {
    k.fill_plane(g, x_group + c * in_plane, buffer.data() + c * l.channel_stride);
  }
  return buffer.data();
}

const float* StageWindows(const ConvGeometry& g, const float* x, int64_t n, int64_t group, int64_t q0,
                          int64_t stride) {
  thread_local std::vector<float> buffer;
  // A cache line of room to align the windows, and kLanes floats of slack for the last
  // window's whole-vector loads (they reach at most kLanes - 1 floats past it).
  const int64_t used = g.in_channels_per_group * stride + kLanes;
  buffer.resize(static_cast<size_t>(used + kLanes));
  float* windows = AlignToLine(buffer.data());
  std::fill(windows + used - kLanes, windows + used, 0.0f);
  const float* x_group = GroupOf(g, x, n, group);
  const int64_t in_plane = InPlane(g);
  for (int64_t c = 0; c < g.in_channels_per_group; ++c) {
    FillWindow(g.axes[2], x_group + c * in_plane, q0, stride, windows + c * stride);
  }
  return windows;
}

}  // namespace onnx_sparsify
