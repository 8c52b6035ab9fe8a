// Plain-loop bodies of the hot functions, compiled once per instruction set: each tiles_*.cc
// wraps them in functions with its target attribute (ONNX_SPARSIFY_DEFINE_VARIANTS).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kernels/activation.h"
#include "kernels/cpu_tiles.h"

namespace onnx_sparsify {

#define ONNX_SPARSIFY_BODY __attribute__((always_inline)) inline
#define ONNX_SPARSIFY_INLINE_LAMBDA __attribute__((always_inline))

// FillPlaneBody zeroes channels of at most this many elements whole first.
inline constexpr int64_t kZeroWholePlane = 8192;

// Fills the phase buffer of one channel plane from X's plane. One function with plain loops
// inside: most rows are short, so calls per row would cost more than the copying.
// T: float (padding 0), or the quantized kernel's int16 (its zero point subtracted: padding 0)
// and uint8 (padding the zero point).
template <class T>
ONNX_SPARSIFY_BODY void FillPlaneBody(const ConvGeometry& g, const T* x, T* dst, T pad = T{0}) {
  const PhaseLayout& l = g.layout;
  const AxisGeometry &a0 = g.axes[0], &a1 = g.axes[1], &a2 = g.axes[2];
  const int64_t s0 = l.stride[0], s1 = l.stride[1], s2 = l.stride[2];
  const int64_t e2 = l.extent[2];
  // Small channels (most rows short): zeroed whole first, then only the rows inside X copied,
  // instead of zeroing one or two padding columns per row (G1 1.07x faster, docs/performance.md).
  const bool zeroed = l.channel_stride <= kZeroWholePlane;
  if (zeroed) {
    if (pad == T{0}) {
      std::memset(dst, 0, static_cast<size_t>(l.channel_stride) * sizeof(T));
    } else {
      std::fill(dst, dst + l.channel_stride, pad);
    }
  }
  for (int64_t r0 = 0; r0 < s0; ++r0) {
    for (int64_t r1 = 0; r1 < s1; ++r1) {
      for (int64_t r2 = 0; r2 < s2; ++r2) {
        // Phase columns t2 whose source i2 = r2 + t2 * s2 - pad lies inside X: [lo, hi).
        const int64_t first = a2.pad_begin - r2;
        const int64_t lo = std::clamp<int64_t>(first <= 0 ? 0 : (first + s2 - 1) / s2, 0, e2);
        const int64_t last = a2.in - 1 + a2.pad_begin - r2;
        const int64_t hi = std::clamp<int64_t>(last < 0 ? 0 : last / s2 + 1, lo, e2);
        T* out = dst + ((r0 * s1 + r1) * s2 + r2) * l.phase_plane;
        for (int64_t t0 = 0; t0 < l.extent[0]; ++t0) {
          const int64_t i0 = r0 + t0 * s0 - a0.pad_begin;
          for (int64_t t1 = 0; t1 < l.extent[1]; ++t1, out += e2) {
            const int64_t i1 = r1 + t1 * s1 - a1.pad_begin;
            const bool inside = i0 >= 0 && i0 < a0.in && i1 >= 0 && i1 < a1.in && lo < hi;
            if (zeroed && !inside) continue;
            const int64_t begin = inside ? lo : e2;  // a row outside X is all padding
            if (!zeroed) {
              for (int64_t t2 = 0; t2 < begin; ++t2) out[t2] = pad;
            }
            if (!inside) continue;
            const T* row = x + (i0 * a1.in + i1) * a2.in + (r2 + lo * s2 - a2.pad_begin);
            T* o = out + lo;
            const int64_t n = hi - lo;
            if (s2 == 1) {
              for (int64_t t2 = 0; t2 < n; ++t2) o[t2] = row[t2];
            } else if (s2 == 2) {
              for (int64_t t2 = 0; t2 < n; ++t2) o[t2] = row[2 * t2];
            } else {
              for (int64_t t2 = 0; t2 < n; ++t2) o[t2] = row[t2 * s2];
            }
            if (!zeroed) {
              for (int64_t t2 = hi; t2 < e2; ++t2) out[t2] = pad;
            }
          }
        }
        // The alignment gap at the plane's end: never read for results, zeroed all the same.
        T* plane_end = dst + ((r0 * s1 + r1) * s2 + r2 + 1) * l.phase_plane;
        if (!zeroed) {
          for (; out < plane_end; ++out) *out = pad;
        }
      }
    }
  }
}

// Applies the epilogue to n values in place (bias already added), in vectors of V; the tail
// through one zero-padded vector, so that every value takes the same formulas.
template <class V>
ONNX_SPARSIFY_BODY void EpilogueBody(const Epilogue& e, float slope, float* y, int64_t n) {
  constexpr int64_t kWidth = sizeof(V) / sizeof(float);
  for (int s = 0; s < e.count; ++s) {
    activation::DispatchStep<V>(e.steps[s], slope, [&](auto f) ONNX_SPARSIFY_INLINE_LAMBDA {
      int64_t i = 0;
      for (; i + kWidth <= n; i += kWidth) {
        V v;
        std::memcpy(&v, y + i, sizeof(V));
        v = f(v);
        std::memcpy(y + i, &v, sizeof(V));
      }
      if (i == n) return;
      V v{};
      std::memcpy(&v, y + i, static_cast<size_t>(n - i) * sizeof(float));
      v = f(v);
      std::memcpy(y + i, &v, static_cast<size_t>(n - i) * sizeof(float));
    });
  }
}

// y[r * y_stride + i] += w * x[r * x_stride + i] for r < rows, i < cols.
ONNX_SPARSIFY_BODY void Axpy2DBody(float w, const float* x, int64_t x_stride, float* y, int64_t y_stride,
                                   int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r, x += x_stride, y += y_stride) {
    for (int64_t i = 0; i < cols; ++i) y[i] += w * x[i];
  }
}


// The variants of the bodies above for one instruction set: FillPlane##SUFFIX, Axpy2D##SUFFIX and
// Epilogue##SUFFIX, compiled with TARGET, the epilogue in vectors of VECTOR.
#define ONNX_SPARSIFY_DEFINE_VARIANTS(SUFFIX, TARGET, VECTOR)                                                     \
  TARGET void FillPlane##SUFFIX(const ConvGeometry& g, const float* x, float* dst) { FillPlaneBody(g, x, dst); } \
  TARGET void Axpy2D##SUFFIX(float w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t rows, \
                             int64_t cols) {                                                                \
    Axpy2DBody(w, x, x_stride, y, y_stride, rows, cols);                                                      \
  }                                                                                                         \
  TARGET void Epilogue##SUFFIX(const Epilogue& e, float slope, float* y, int64_t n) {                     \
    EpilogueBody<activation::VECTOR>(e, slope, y, n);                                                      \
  }

}  // namespace onnx_sparsify
