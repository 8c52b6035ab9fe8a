// SparseConv on the CPU.
//
// Layout: each call copies X once into a zero-padded, phase-decomposed buffer (one phase per
// stride residue on each axis; see PhaseLayout), unless X already has that layout (no padding,
// unit strides). In that buffer every output position of a channel is a "virtual position"
// p = (o0 * E1 + o1) * E2 + o2 (E = phase extents), and every nonzero (c, k) reads element
// p + offset(c, k): a contiguous, unit-stride load whatever the stride, dilation and padding.
// A channel's virtual row includes a few positions outside the output (o1 >= O1 or o2 >= O2);
// they are computed and dropped.
//
// Kernel: for one output channel and a tile of up to 16*8 consecutive virtual positions, the
// accumulators stay in registers while the channel's nonzeros stream by; each nonzero costs one
// broadcast and one fused multiply-add (with its load) per vector. Tasks cover a block of
// output channels and a block of positions, so a block's input window stays in cache across
// channels. Grouped convolutions with small groups pad each group into a per-thread buffer
// right before use instead, so the padded copy never leaves the cache.
//
// Instruction sets: each hot function has one variant per CpuIsa (cpu_isa.h), gathered in an
// IsaKernels table that a call selects. The tiles are written with intrinsics for AVX-512 and
// AVX2 and as plain loops for the baseline; the other functions are plain loops compiled once
// per instruction set (an always-inline body inside wrappers with target attributes).
// The AVX2 tile is written with intrinsics, not left to the auto-vectorizer: GCC 12.2 at -O3
// miscompiles the plain-loop tile for AVX2 (the vectorized full-tile loop updates only its first
// and last 8 lanes; no undefined behaviour involved, see docs/performance.md).
//
// avx512f-jit: where the kernel was given code generated for the layer (jit_tiles.h), the tile
// path runs that instead, in blocks of up to 28 output channels over runs of output positions
// (JitWalk); the plane path and layers without code are as above.
#include "sparse_conv_cpu.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/activation.h"
#include "kernels/jit_tiles.h"

#ifdef ONNX_SPARSIFY_X86
#include <immintrin.h>
#endif

namespace onnx_sparsify {
namespace {

constexpr int kLanes = 16;                                    // floats per AVX-512 vector
constexpr int kTile = static_cast<int>(kCpuTilePositions);    // virtual positions per tile
constexpr int kMaxVectors = kTile / kLanes;                   // accumulators per tile
constexpr int64_t kPositionBlock = kTile;    // virtual positions per task
constexpr int64_t kZeroWholePlane = 8192;    // FillPlaneBody zeroes channels of at most this many floats first
constexpr int64_t kChannelBlock = 64;        // output channels per task, at most
constexpr int64_t kMinTasks = 16;            // tasks per call worth splitting channel blocks for
constexpr int64_t kGroupBufferBytes = 512 * 1024;  // per-group padding when a group fits this
constexpr int64_t kWindowBufferBytes = 8 << 20;     // avx512f-jit's windows of one group: at most this
constexpr int64_t kBeyondL2Bytes = 1536 * 1024;    // group inputs larger than this: kBlocksBeyondL2
constexpr int64_t kJitTaskPositions = 512;  // output positions per task with generated code
// Output positions per channel below which no code is generated: each block's code then runs
// for a few vectors per call, and fetching it costs more than it saves (R4, 7x7: 0.99x of the
// AVX-512 tile at 70% zeros, 1.07x at 90%).
constexpr int64_t kJitMinPositions = 128;
constexpr int64_t kSerialWork = 1 << 17;  // multiply-adds (nnz x output positions) below which a call runs serially

#define ONNX_SPARSIFY_BODY __attribute__((always_inline)) inline

// Fills the phase buffer of one channel plane from X's plane. One function with plain loops
// inside: most rows are short, so calls per row would cost more than the copying.
ONNX_SPARSIFY_BODY void FillPlaneBody(const ConvGeometry& g, const float* x, float* dst) {
  const PhaseLayout& l = g.layout;
  const AxisGeometry &a0 = g.axes[0], &a1 = g.axes[1], &a2 = g.axes[2];
  const int64_t s0 = l.stride[0], s1 = l.stride[1], s2 = l.stride[2];
  const int64_t e2 = l.extent[2];
  // Small channels (most rows short): zeroed whole first, then only the rows inside X copied,
  // instead of zeroing one or two padding columns per row (G1 1.07x faster, docs/performance.md).
  const bool zeroed = l.channel_stride <= kZeroWholePlane;
  if (zeroed) std::memset(dst, 0, static_cast<size_t>(l.channel_stride) * sizeof(float));
  for (int64_t r0 = 0; r0 < s0; ++r0) {
    for (int64_t r1 = 0; r1 < s1; ++r1) {
      for (int64_t r2 = 0; r2 < s2; ++r2) {
        // Phase columns t2 whose source i2 = r2 + t2 * s2 - pad lies inside X: [lo, hi).
        const int64_t first = a2.pad_begin - r2;
        const int64_t lo = std::clamp<int64_t>(first <= 0 ? 0 : (first + s2 - 1) / s2, 0, e2);
        const int64_t last = a2.in - 1 + a2.pad_begin - r2;
        const int64_t hi = std::clamp<int64_t>(last < 0 ? 0 : last / s2 + 1, lo, e2);
        float* out = dst + ((r0 * s1 + r1) * s2 + r2) * l.phase_plane;
        for (int64_t t0 = 0; t0 < l.extent[0]; ++t0) {
          const int64_t i0 = r0 + t0 * s0 - a0.pad_begin;
          for (int64_t t1 = 0; t1 < l.extent[1]; ++t1, out += e2) {
            const int64_t i1 = r1 + t1 * s1 - a1.pad_begin;
            const bool inside = i0 >= 0 && i0 < a0.in && i1 >= 0 && i1 < a1.in && lo < hi;
            if (zeroed && !inside) continue;
            const int64_t begin = inside ? lo : e2;  // a row outside X is all padding
            if (!zeroed) {
              for (int64_t t2 = 0; t2 < begin; ++t2) out[t2] = 0.0f;
            }
            if (!inside) continue;
            const float* row = x + (i0 * a1.in + i1) * a2.in + (r2 + lo * s2 - a2.pad_begin);
            float* o = out + lo;
            const int64_t n = hi - lo;
            if (s2 == 1) {
              for (int64_t t2 = 0; t2 < n; ++t2) o[t2] = row[t2];
            } else if (s2 == 2) {
              for (int64_t t2 = 0; t2 < n; ++t2) o[t2] = row[2 * t2];
            } else {
              for (int64_t t2 = 0; t2 < n; ++t2) o[t2] = row[t2 * s2];
            }
            if (!zeroed) {
              for (int64_t t2 = hi; t2 < e2; ++t2) out[t2] = 0.0f;
            }
          }
        }
        // The alignment gap at the plane's end: never read for results, zeroed all the same.
        float* plane_end = dst + ((r0 * s1 + r1) * s2 + r2 + 1) * l.phase_plane;
        if (!zeroed) {
          for (; out < plane_end; ++out) *out = 0.0f;
        }
      }
    }
  }
}

// out[0, valid) = f(start + sum_j values[j] * in[offsets[j] + t]), where start is bias + init[t]
// (init: a partial sum, or the residual input Z) or the bias alone when init is null, and f is the
// epilogue (none when null; `slope` is PRelu's for this channel). Nothing at or past `valid` is
// written, and nothing there is read unless `whole`: then `in` may be read up to the end of the
// vector holding position valid - 1 (the buffer has kLanes floats of slack), which the AVX-512
// tile does with plain loads instead of masked ones.
using TileFn = void (*)(const float* in, const int64_t* offsets, const float* values, int64_t nnz, float bias,
                        const float* init, int valid, bool whole, float* out, const Epilogue* epilogue, float slope);

#define ONNX_SPARSIFY_INLINE_LAMBDA __attribute__((always_inline))

#ifdef ONNX_SPARSIFY_X86
// Accumulators as named variables: GCC keeps an array of vectors in memory here, storing it on
// every iteration.
#define ONNX_SPARSIFY_STEP(i)                                                            \
  if constexpr (R > i) {                                                               \
    const __m512 v = (i == R - 1 && !Whole) ? _mm512_maskz_loadu_ps(last, p + i * kLanes) \
                                            : _mm512_loadu_ps(p + i * kLanes);             \
    a##i = _mm512_fmadd_ps(w, v, a##i);                                                  \
  }
#define ONNX_SPARSIFY_INIT(i)                                                                         \
  if constexpr (R > i) {                                                                            \
    a##i = _mm512_add_ps(a##i, (i == R - 1) ? _mm512_maskz_loadu_ps(last, init + i * kLanes)        \
                                            : _mm512_loadu_ps(init + i * kLanes));                  \
  }
#define ONNX_SPARSIFY_STORE(i)                                                      \
  if constexpr (R > i) {                                                          \
    if constexpr (i == R - 1) _mm512_mask_storeu_ps(out + i * kLanes, last, a##i); \
    else _mm512_storeu_ps(out + i * kLanes, a##i);                                 \
  }

#define ONNX_SPARSIFY_EPILOGUE(i) \
  if constexpr (R > i) a##i = (__m512)f((activation::V16)a##i);

// Whole: the last vector is loaded whole in the loop (TileFn's `whole`), not masked: R4's
// tiles (61 positions, 4 vectors) ran 2-4% faster so on an Intel Xeon.
template <int R, bool Whole>
__attribute__((target("avx512f"))) inline void TileAvx512Fixed(const float* in, const int64_t* offsets,
                                                                 const float* values, int64_t nnz, float bias,
                                                                 const float* init, int valid, float* out,
                                                                 const Epilogue* epilogue, float slope) {
  __m512 a0 = _mm512_set1_ps(bias), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const int tail = valid - (R - 1) * kLanes;  // lanes used in the last vector, 1..16
  const __mmask16 last = tail >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << tail) - 1);
  if (init) {
    ONNX_SPARSIFY_INIT(0) ONNX_SPARSIFY_INIT(1) ONNX_SPARSIFY_INIT(2) ONNX_SPARSIFY_INIT(3)
    ONNX_SPARSIFY_INIT(4) ONNX_SPARSIFY_INIT(5) ONNX_SPARSIFY_INIT(6) ONNX_SPARSIFY_INIT(7)
  }
  for (int64_t j = 0; j < nnz; ++j) {
    const __m512 w = _mm512_set1_ps(values[j]);
    const float* p = in + offsets[j];
    ONNX_SPARSIFY_STEP(0) ONNX_SPARSIFY_STEP(1) ONNX_SPARSIFY_STEP(2) ONNX_SPARSIFY_STEP(3)
    ONNX_SPARSIFY_STEP(4) ONNX_SPARSIFY_STEP(5) ONNX_SPARSIFY_STEP(6) ONNX_SPARSIFY_STEP(7)
  }
  for (int s = 0; epilogue && s < epilogue->count; ++s) {  // in registers, one switch per step
    activation::DispatchStep<activation::V16>(epilogue->steps[s], slope, [&](auto f) ONNX_SPARSIFY_INLINE_LAMBDA {
      ONNX_SPARSIFY_EPILOGUE(0) ONNX_SPARSIFY_EPILOGUE(1) ONNX_SPARSIFY_EPILOGUE(2) ONNX_SPARSIFY_EPILOGUE(3)
      ONNX_SPARSIFY_EPILOGUE(4) ONNX_SPARSIFY_EPILOGUE(5) ONNX_SPARSIFY_EPILOGUE(6) ONNX_SPARSIFY_EPILOGUE(7)
    });
  }
  ONNX_SPARSIFY_STORE(0) ONNX_SPARSIFY_STORE(1) ONNX_SPARSIFY_STORE(2) ONNX_SPARSIFY_STORE(3)
  ONNX_SPARSIFY_STORE(4) ONNX_SPARSIFY_STORE(5) ONNX_SPARSIFY_STORE(6) ONNX_SPARSIFY_STORE(7)
}
#undef ONNX_SPARSIFY_STEP
#undef ONNX_SPARSIFY_INIT
#undef ONNX_SPARSIFY_STORE
#undef ONNX_SPARSIFY_EPILOGUE

template <bool Whole>
__attribute__((target("avx512f"))) void TileAvx512Dispatch(const float* in, const int64_t* offsets, const float* values,
                                                             int64_t nnz, float bias, const float* init, int valid,
                                                             float* out, const Epilogue* epilogue, float slope) {
  switch ((valid + kLanes - 1) / kLanes) {
    case 8: return TileAvx512Fixed<8, Whole>(in, offsets, values, nnz, bias, init, valid, out, epilogue, slope);
    case 7: return TileAvx512Fixed<7, Whole>(in, offsets, values, nnz, bias, init, valid, out, epilogue, slope);
    case 6: return TileAvx512Fixed<6, Whole>(in, offsets, values, nnz, bias, init, valid, out, epilogue, slope);
    case 5: return TileAvx512Fixed<5, Whole>(in, offsets, values, nnz, bias, init, valid, out, epilogue, slope);
    case 4: return TileAvx512Fixed<4, Whole>(in, offsets, values, nnz, bias, init, valid, out, epilogue, slope);
    case 3: return TileAvx512Fixed<3, Whole>(in, offsets, values, nnz, bias, init, valid, out, epilogue, slope);
    case 2: return TileAvx512Fixed<2, Whole>(in, offsets, values, nnz, bias, init, valid, out, epilogue, slope);
    default: return TileAvx512Fixed<1, Whole>(in, offsets, values, nnz, bias, init, valid, out, epilogue, slope);
  }
}

__attribute__((target("avx512f"))) void TileAvx512(const float* in, const int64_t* offsets, const float* values,
                                                     int64_t nnz, float bias, const float* init, int valid, bool whole,
                                                     float* out, const Epilogue* epilogue, float slope) {
  // A full tile has no masked load either way.
  if (whole && valid % kLanes != 0) {
    return TileAvx512Dispatch<true>(in, offsets, values, nnz, bias, init, valid, out, epilogue, slope);
  }
  return TileAvx512Dispatch<false>(in, offsets, values, nnz, bias, init, valid, out, epilogue, slope);
}

constexpr int kLanesAvx2 = 8;                          // floats per AVX2 vector
constexpr int kTileAvx2 = kLanesAvx2 * kMaxVectors;    // positions per AVX2 sub-tile

#define ONNX_SPARSIFY_STEP(i)                                                                    \
  if constexpr (R > i) {                                                                       \
    const __m256 v = (i == R - 1) ? _mm256_maskload_ps(p + i * kLanesAvx2, last) : _mm256_loadu_ps(p + i * kLanesAvx2); \
    a##i = _mm256_fmadd_ps(w, v, a##i);                                                          \
  }
#define ONNX_SPARSIFY_INIT(i)                                                                         \
  if constexpr (R > i) {                                                                            \
    a##i = _mm256_add_ps(a##i, (i == R - 1) ? _mm256_maskload_ps(init + i * kLanesAvx2, last)       \
                                            : _mm256_loadu_ps(init + i * kLanesAvx2));              \
  }
#define ONNX_SPARSIFY_STORE(i)                                                               \
  if constexpr (R > i) {                                                                   \
    if constexpr (i == R - 1) _mm256_maskstore_ps(out + i * kLanesAvx2, last, a##i);      \
    else _mm256_storeu_ps(out + i * kLanesAvx2, a##i);                                    \
  }

#define ONNX_SPARSIFY_EPILOGUE(i) \
  if constexpr (R > i) a##i = (__m256)f((activation::V8)a##i);

// Up to 64 positions: R vectors of 8 accumulators, the last one masked to `valid`.
template <int R>
__attribute__((target("avx2,fma"))) inline void TileAvx2Fixed(const float* in, const int64_t* offsets,
                                                               const float* values, int64_t nnz, float bias,
                                                               const float* init, int valid, float* out,
                                                               const Epilogue* epilogue, float slope) {
  __m256 a0 = _mm256_set1_ps(bias), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const int tail = valid - (R - 1) * kLanesAvx2;  // lanes used in the last vector, 1..8
  const __m256i last = _mm256_cmpgt_epi32(_mm256_set1_epi32(tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  if (init) {
    ONNX_SPARSIFY_INIT(0) ONNX_SPARSIFY_INIT(1) ONNX_SPARSIFY_INIT(2) ONNX_SPARSIFY_INIT(3)
    ONNX_SPARSIFY_INIT(4) ONNX_SPARSIFY_INIT(5) ONNX_SPARSIFY_INIT(6) ONNX_SPARSIFY_INIT(7)
  }
  for (int64_t j = 0; j < nnz; ++j) {
    const __m256 w = _mm256_set1_ps(values[j]);
    const float* p = in + offsets[j];
    ONNX_SPARSIFY_STEP(0) ONNX_SPARSIFY_STEP(1) ONNX_SPARSIFY_STEP(2) ONNX_SPARSIFY_STEP(3)
    ONNX_SPARSIFY_STEP(4) ONNX_SPARSIFY_STEP(5) ONNX_SPARSIFY_STEP(6) ONNX_SPARSIFY_STEP(7)
  }
  for (int s = 0; epilogue && s < epilogue->count; ++s) {
    activation::DispatchStep<activation::V8>(epilogue->steps[s], slope, [&](auto f) ONNX_SPARSIFY_INLINE_LAMBDA {
      ONNX_SPARSIFY_EPILOGUE(0) ONNX_SPARSIFY_EPILOGUE(1) ONNX_SPARSIFY_EPILOGUE(2) ONNX_SPARSIFY_EPILOGUE(3)
      ONNX_SPARSIFY_EPILOGUE(4) ONNX_SPARSIFY_EPILOGUE(5) ONNX_SPARSIFY_EPILOGUE(6) ONNX_SPARSIFY_EPILOGUE(7)
    });
  }
  ONNX_SPARSIFY_STORE(0) ONNX_SPARSIFY_STORE(1) ONNX_SPARSIFY_STORE(2) ONNX_SPARSIFY_STORE(3)
  ONNX_SPARSIFY_STORE(4) ONNX_SPARSIFY_STORE(5) ONNX_SPARSIFY_STORE(6) ONNX_SPARSIFY_STORE(7)
}
#undef ONNX_SPARSIFY_STEP
#undef ONNX_SPARSIFY_INIT
#undef ONNX_SPARSIFY_STORE
#undef ONNX_SPARSIFY_EPILOGUE

// A tile in sub-tiles of 64 positions: 16 registers hold 8 accumulators, the broadcast weight
// and a load.
__attribute__((target("avx2,fma"))) void TileAvx2(const float* in, const int64_t* offsets, const float* values,
                                                   int64_t nnz, float bias, const float* init, int valid, bool,
                                                   float* out, const Epilogue* epilogue, float slope) {
  for (int begin = 0; begin < valid; begin += kTileAvx2) {
    const int n = std::min(kTileAvx2, valid - begin);
    const float* sub_init = init ? init + begin : nullptr;
    switch ((n + kLanesAvx2 - 1) / kLanesAvx2) {
      case 8: TileAvx2Fixed<8>(in + begin, offsets, values, nnz, bias, sub_init, n, out + begin, epilogue, slope); break;
      case 7: TileAvx2Fixed<7>(in + begin, offsets, values, nnz, bias, sub_init, n, out + begin, epilogue, slope); break;
      case 6: TileAvx2Fixed<6>(in + begin, offsets, values, nnz, bias, sub_init, n, out + begin, epilogue, slope); break;
      case 5: TileAvx2Fixed<5>(in + begin, offsets, values, nnz, bias, sub_init, n, out + begin, epilogue, slope); break;
      case 4: TileAvx2Fixed<4>(in + begin, offsets, values, nnz, bias, sub_init, n, out + begin, epilogue, slope); break;
      case 3: TileAvx2Fixed<3>(in + begin, offsets, values, nnz, bias, sub_init, n, out + begin, epilogue, slope); break;
      case 2: TileAvx2Fixed<2>(in + begin, offsets, values, nnz, bias, sub_init, n, out + begin, epilogue, slope); break;
      default: TileAvx2Fixed<1>(in + begin, offsets, values, nnz, bias, sub_init, n, out + begin, epilogue, slope); break;
    }
  }
}
#endif  // ONNX_SPARSIFY_X86

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

// Baseline tile: plain loops over `out` (which may be `init` itself), left to the compiler; the
// epilogue then runs over the tile, still in L1, in 4-float vectors.
void TileBaseline(const float* in, const int64_t* offsets, const float* values, int64_t nnz, float bias,
                  const float* init, int valid, bool, float* out, const Epilogue* epilogue, float slope) {
  for (int t = 0; t < valid; ++t) out[t] = init ? bias + init[t] : bias;
  for (int64_t j = 0; j < nnz; ++j) {
    const float v = values[j];
    const float* p = in + offsets[j];
    for (int t = 0; t < valid; ++t) out[t] += v * p[t];
  }
  if (epilogue) EpilogueBody<activation::V4>(*epilogue, slope, out, valid);
}

// y[r * y_stride + i] += w * x[r * x_stride + i] for r < rows, i < cols.
ONNX_SPARSIFY_BODY void Axpy2DBody(float w, const float* x, int64_t x_stride, float* y, int64_t y_stride,
                                   int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r, x += x_stride, y += y_stride) {
    for (int64_t i = 0; i < cols; ++i) y[i] += w * x[i];
  }
}

// One instruction set's variants of the hot functions.
struct IsaKernels {
  void (*fill_plane)(const ConvGeometry& g, const float* x, float* dst);
  TileFn tile;
  void (*axpy_2d)(float w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t rows, int64_t cols);
  void (*epilogue)(const Epilogue& e, float slope, float* y, int64_t n);
};

#define ONNX_SPARSIFY_DEFINE_VARIANTS(SUFFIX, TARGET, VECTOR)                                                     \
  TARGET void FillPlane##SUFFIX(const ConvGeometry& g, const float* x, float* dst) { FillPlaneBody(g, x, dst); } \
  TARGET void Axpy2D##SUFFIX(float w, const float* x, int64_t x_stride, float* y, int64_t y_stride, int64_t rows, \
                             int64_t cols) {                                                                \
    Axpy2DBody(w, x, x_stride, y, y_stride, rows, cols);                                                      \
  }                                                                                                         \
  TARGET void Epilogue##SUFFIX(const Epilogue& e, float slope, float* y, int64_t n) {                     \
    EpilogueBody<activation::VECTOR>(e, slope, y, n);                                                      \
  }

ONNX_SPARSIFY_DEFINE_VARIANTS(Baseline, , V4)
#ifdef ONNX_SPARSIFY_X86
ONNX_SPARSIFY_DEFINE_VARIANTS(Avx2, __attribute__((target("avx2,fma"))), V8)
ONNX_SPARSIFY_DEFINE_VARIANTS(Avx512, __attribute__((target("avx512f,avx2,fma"))), V16)
#endif
#undef ONNX_SPARSIFY_DEFINE_VARIANTS

#ifdef ONNX_SPARSIFY_X86
// FillPlaneBody for a stride of 2 on the last axis and no cropping, on AVX-512: each
// row of X is read once, 32 floats at a time, and split into its two phase rows by two permutes
// and two masked stores, where the plain body gathers every other float once per phase (a
// third of R3's time went there).
__attribute__((target("avx512f"))) void FillPlaneStride2Avx512(const ConvGeometry& g, const float* x, float* dst) {
  const PhaseLayout& l = g.layout;
  const AxisGeometry &a0 = g.axes[0], &a1 = g.axes[1], &a2 = g.axes[2];
  const int64_t s0 = l.stride[0], s1 = l.stride[1], e1 = l.extent[1], e2 = l.extent[2];
  std::memset(dst, 0, static_cast<size_t>(l.channel_stride) * sizeof(float));
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int64_t r0 = 0; r0 < s0; ++r0) {
    for (int64_t t0 = 0; t0 < l.extent[0]; ++t0) {
      const int64_t i0 = r0 + t0 * s0 - a0.pad_begin;
      if (i0 < 0 || i0 >= a0.in) continue;
      for (int64_t r1 = 0; r1 < s1; ++r1) {
        // The two phase planes (last-axis residues 0 and 1) of this (r0, r1).
        float* planes = dst + (r0 * s1 + r1) * 2 * l.phase_plane;
        for (int64_t t1 = 0; t1 < e1; ++t1) {
          const int64_t i1 = r1 + t1 * s1 - a1.pad_begin;
          if (i1 < 0 || i1 >= a1.in) continue;
          const float* row = x + (i0 * a1.in + i1) * a2.in;
          const int64_t line = (t0 * e1 + t1) * e2;
          for (int64_t i2 = 0; i2 < a2.in; i2 += 2 * kLanes) {
            const int64_t n = std::min<int64_t>(2 * kLanes, a2.in - i2);
            const __mmask16 m_lo = n >= kLanes ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1);
            const __mmask16 m_hi = n <= kLanes ? 0 : (n >= 2 * kLanes ? 0xFFFF : static_cast<__mmask16>((1u << (n - kLanes)) - 1));
            const __m512 lo = _mm512_maskz_loadu_ps(m_lo, row + i2);
            const __m512 hi = _mm512_maskz_loadu_ps(m_hi, row + i2 + kLanes);
            // Padded index j = i2 + pad (+ k): residue j % 2, column j / 2.
            const int64_t j = i2 + a2.pad_begin;
            const int64_t n_first = (n + 1) / 2, n_second = n / 2;  // elements k even, k odd
            float* first = planes + (j % 2) * l.phase_plane + line + j / 2;
            float* second = planes + ((j + 1) % 2) * l.phase_plane + line + (j + 1) / 2;
            _mm512_mask_storeu_ps(first, static_cast<__mmask16>((1u << n_first) - 1), _mm512_permutex2var_ps(lo, even, hi));
            if (n_second > 0) {
              _mm512_mask_storeu_ps(second, static_cast<__mmask16>((1u << n_second) - 1),
                                    _mm512_permutex2var_ps(lo, odd, hi));
            }
          }
        }
      }
    }
  }
}

__attribute__((target("avx512f,avx2,fma"))) void FillPlaneAvx512Any(const ConvGeometry& g, const float* x, float* dst) {
  const PhaseLayout& l = g.layout;
  // (A negative pad_end crops X's last columns, which the fast path would copy.)
  if (l.stride[2] == 2 && g.axes[0].pad_begin >= 0 && g.axes[1].pad_begin >= 0 && g.axes[2].pad_begin >= 0 &&
      g.axes[2].pad_end >= 0) {
    FillPlaneStride2Avx512(g, x, dst);
  } else {
    FillPlaneAvx512(g, x, dst);
  }
}
#endif

const IsaKernels& KernelsFor(CpuIsa isa) {
  static const IsaKernels kBaseline{FillPlaneBaseline, TileBaseline, Axpy2DBaseline, EpilogueBaseline};
#ifdef ONNX_SPARSIFY_X86
  static const IsaKernels kAvx2{FillPlaneAvx2, TileAvx2, Axpy2DAvx2, EpilogueAvx2};
  static const IsaKernels kAvx512{FillPlaneAvx512Any, TileAvx512, Axpy2DAvx512, EpilogueAvx512};
  if (isa == CpuIsa::kAvx512 || isa == CpuIsa::kAvx512Jit) return kAvx512;
  if (isa == CpuIsa::kAvx2) return kAvx2;
#endif
  (void)isa;
  return kBaseline;
}

// Copies a tile of virtual positions [p, p + count) into the output plane, dropping positions
// outside the output; with a residual plane (Z's, laid out as the output), adds it and applies
// the epilogue, which the tile could not (it must come after the residual).
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

// Computes output channels [m_begin, m_end) over virtual positions [p_begin, p_end) of image n.
// `in` is the phase buffer of the channels' group. With input-channel blocking, each tile runs
// block by block over a few channels at once, keeping partial sums in `partial`, so the input
// window read by a block stays in L1 across the channels.
void ComputeBlock(const IsaKernels& k, const ConvGeometry& g, const CpuWeights& w, const int64_t* offsets,
                  const float* bias, const float* residual, const ConvAttributes& attrs, const float* in, bool whole,
                  int block_plan, int64_t n, int64_t m_begin, int64_t m_end, int64_t p_begin, int64_t p_end,
                  float* y) {
  const PhaseLayout& l = g.layout;
  // Virtual positions are output indices when the phase extents equal the output sizes.
  const bool direct = l.extent[1] == g.axes[1].out && l.extent[2] == g.axes[2].out;
  const int64_t blocks = w.channel_blocks(block_plan);
  const Epilogue* epilogue = attrs.epilogue.empty() ? nullptr : &attrs.epilogue;
  alignas(64) float partial[kChannelBlock * kTile];
  for (int64_t p = p_begin; p < p_end; p += kTile) {
    const int valid = static_cast<int>(std::min<int64_t>(kTile, p_end - p));
    for (int64_t m0 = m_begin; m0 < m_end; m0 += kChannelBlock) {
      const int64_t m1 = std::min(m_end, m0 + kChannelBlock);
      for (int64_t b = 0; b < blocks; ++b) {
        const bool final = b == blocks - 1;
        for (int64_t m = m0; m < m1; ++m) {
          const int64_t begin = w.block_begin(m, b, block_plan), nnz = w.block_begin(m, b + 1, block_plan) - begin;
          float* acc = partial + (m - m0) * kTile;
          const int64_t plane = (n * g.out_channels + m) * g.out_plane;
          float* out = y + plane;
          float* dst = final && direct ? out + p : acc;
          // Z joins the first block where it is laid out as the tile (direct), else StoreTile.
          const float* init = b > 0 ? acc : (residual && direct ? residual + plane + p : nullptr);
          const bool epilogue_here = direct || !residual;
          k.tile(in + p, offsets + begin, w.values() + begin, nnz, b == 0 && bias ? bias[m] : 0.0f, init, valid, whole,
                 dst, final && epilogue_here ? epilogue : nullptr, attrs.slope(m));
          if (final && !direct) {
            StoreTile(k, g, acc, p, valid, out, residual ? residual + plane : nullptr,
                      epilogue_here ? nullptr : epilogue, attrs.slope(m));
          }
        }
      }
    }
  }
}

// How a generated block (jit_tiles.h) walks a layer's outputs. kFlat: virtual positions are
// output positions, the plane is one row. kRows: output rows (the first two spatial axes
// flattened), the last vector of each row masked; taken where whole vectors per row waste no
// more than the phase buffer's own row padding does. kVirtual: tiles of virtual positions
// into a buffer, then StoreTile drops the positions outside the output (small planes: R4's rows
// of 7 in rows of 9). kWindows: a single padded input row per channel (1-D layers, unit
// stride) is not copied whole; each task pads the inputs of kJitTaskPositions outputs into its
// thread's buffer, one window per channel (JitWindowStride apart), and runs the group's blocks
// on it: no pass over all of X, and the blocks read their input from L1/L2, not L3 (A1: 13% of
// its time was the copy; docs/performance.md row 28).
enum class JitWalk { kFlat, kRows, kVirtual, kWindows };

// A generated block's biases when the layer has none.
alignas(64) constexpr float kNoBias[kJitMaxChannels] = {};

// kWindows: floats per channel in a window buffer, a whole number of cache lines holding the
// inputs of kJitTaskPositions outputs (the last vector's read included).
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

// The layout the generated code reads: g.layout, or for kWindows one window per channel.
PhaseLayout JitLayout(const ConvGeometry& g) {
  PhaseLayout l = g.layout;
  if (JitWalkFor(g) == JitWalk::kWindows) l.channel_stride = JitWindowStride(g);
  return l;
}

// p rounded up to a cache line (kLanes floats).
float* AlignToLine(float* p) {
  constexpr uintptr_t kLine = kLanes * sizeof(float);
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + kLine - 1) & ~(kLine - 1));
}

// kWindows: padded positions [q0, q0 + count) of one channel's row `src` (axis a), zeros outside X.
void FillWindow(const AxisGeometry& a, const float* src, int64_t q0, int64_t count, float* dst) {
  const int64_t begin = std::clamp<int64_t>(a.pad_begin - q0, 0, count);
  const int64_t end = std::clamp<int64_t>(a.pad_begin + a.in - q0, begin, count);
  std::fill(dst, dst + begin, 0.0f);
  if (end > begin) {
    std::memcpy(dst + begin, src + q0 + begin - a.pad_begin, static_cast<size_t>(end - begin) * sizeof(float));
  }
  std::fill(dst + end, dst + count, 0.0f);
}

// Output channels jb of image n over rows [row_begin, row_end) and columns [col_begin, col_end)
// (kFlat, kRows): the block writes conv + bias into Y, then Z and the epilogue are applied to
// what it wrote, still in cache. `length` is a channel's virtual row in `in`; unless `whole` (a
// padded copy with slack), rows whose last vector would read past it run ComputeBlock instead.
void ComputeRowsJit(const IsaKernels& k, const ConvGeometry& g, const CpuWeights& w, const int64_t* offsets,
                    const JitTiles::Block& jb, JitWalk walk, const float* bias, const float* residual,
                    const ConvAttributes& attrs, const float* in, bool whole, int64_t length, int64_t n,
                    int64_t row_begin, int64_t row_end, int64_t col_begin, int64_t col_end, float* y) {
  const PhaseLayout& l = g.layout;
  const bool flat = walk == JitWalk::kFlat;
  // Row r is row r % per_slice of slice r / per_slice; strides in elements.
  const int64_t per_slice = flat ? 1 : g.axes[1].out;
  const int64_t in_row = flat ? 0 : l.extent[2], out_row = flat ? 0 : g.axes[2].out;
  const int64_t in_slice = flat ? 0 : l.extent[1] * l.extent[2], out_slice = flat ? 0 : g.axes[1].out * g.axes[2].out;
  const int64_t columns = col_end - col_begin;
  const int64_t vectors = (columns + kLanes - 1) / kLanes;
  const int64_t tail = columns - (vectors - 1) * kLanes;
  const Epilogue* epilogue = attrs.epilogue.empty() ? nullptr : &attrs.epilogue;
  const int64_t block_plane = (n * g.out_channels + jb.m_begin) * g.out_plane;
  for (int64_t r = row_begin; r < row_end;) {
    const int64_t slice = r / per_slice, i0 = r % per_slice;
    const int64_t rows = std::min(row_end - r, per_slice - i0);  // within one slice: uniform strides
    const int64_t in_pos = slice * in_slice + i0 * in_row + col_begin;
    const int64_t out_pos = slice * out_slice + i0 * out_row + col_begin;
    r += rows;
    if (!whole && in_pos + (rows - 1) * in_row + vectors * kLanes > length) {
      for (int64_t i = 0; i < rows; ++i) {
        ComputeBlock(k, g, w, offsets, bias, residual, attrs, in, whole, CpuWeights::kBlocksInL2, n, jb.m_begin,
                     jb.m_end, in_pos + i * in_row, in_pos + i * in_row + columns, y);
      }
      continue;
    }
    const JitArgs args{in + in_pos,
                       jb.values,
                       y + block_plane + out_pos,
                       bias ? bias + jb.m_begin : kNoBias,
                       rows,
                       vectors,
                       in_row * int64_t{sizeof(float)},
                       out_row * int64_t{sizeof(float)},
                       tail >= kLanes ? 0xFFFFu : (1u << tail) - 1};
    jb.fn(&args);
    if (!residual && !epilogue) continue;
    for (int64_t m = jb.m_begin; m < jb.m_end; ++m) {
      const int64_t plane = (n * g.out_channels + m) * g.out_plane;
      for (int64_t i = 0; i < rows; ++i) {
        float* dst = y + plane + out_pos + i * out_row;
        if (residual) {
          const float* z = residual + plane + out_pos + i * out_row;
          for (int64_t c = 0; c < columns; ++c) dst[c] += z[c];
        }
        if (epilogue) k.epilogue(*epilogue, attrs.slope(m), dst, columns);
      }
    }
  }
}

// Output channels jb of image n over virtual positions [p_begin, p_end) (kVirtual), a tile of
// kTile at a time into a buffer, which StoreTile copies into Y with Z and the epilogue.
void ComputeVirtualJit(const IsaKernels& k, const ConvGeometry& g, const CpuWeights& w, const int64_t* offsets,
                       const JitTiles::Block& jb, const float* bias, const float* residual,
                       const ConvAttributes& attrs, const float* in, bool whole, int64_t length, int64_t n,
                       int64_t p_begin, int64_t p_end, float* y) {
  alignas(64) float acc[kJitMaxChannels * kTile];
  const Epilogue* epilogue = attrs.epilogue.empty() ? nullptr : &attrs.epilogue;
  for (int64_t p = p_begin; p < p_end; p += kTile) {
    const int64_t valid = std::min<int64_t>(kTile, p_end - p);
    const int64_t vectors = (valid + kLanes - 1) / kLanes;
    if (!whole && p + vectors * kLanes > length) {
      ComputeBlock(k, g, w, offsets, bias, residual, attrs, in, whole, CpuWeights::kBlocksInL2, n, jb.m_begin,
                   jb.m_end, p, p + valid, y);
      continue;
    }
    const JitArgs args{in + p, jb.values, acc, bias ? bias + jb.m_begin : kNoBias, 1, vectors, 0, 0, 0xFFFFu};
    jb.fn(&args);
    for (int64_t m = jb.m_begin; m < jb.m_end; ++m) {
      float* a = acc + (m - jb.m_begin) * kTile;
      const int64_t plane = (n * g.out_channels + m) * g.out_plane;
      if (epilogue && !residual) k.epilogue(*epilogue, attrs.slope(m), a, valid);
      StoreTile(k, g, a, p, valid, y + plane, residual ? residual + plane : nullptr, residual ? epilogue : nullptr,
                attrs.slope(m));
    }
  }
}

// The outputs a generated block walks, as rows x columns: kFlat one row of the plane, kRows the
// output rows, kVirtual one row of the `length` virtual positions.
struct JitGrid {
  int64_t rows, columns;
};

JitGrid JitGridFor(const ConvGeometry& g, JitWalk walk, int64_t length) {
  switch (walk) {
    case JitWalk::kFlat: return {1, g.out_plane};
    case JitWalk::kRows: return {g.axes[0].out * g.axes[1].out, g.axes[2].out};
    case JitWalk::kVirtual: return {1, length};
    case JitWalk::kWindows: return {1, g.axes[2].out};
  }
  return {1, length};
}

// Generated block jb over rows [row_begin, row_end) and columns [col_begin, col_end) of its
// JitGrid, by the walk's function.
void ComputeJit(const IsaKernels& k, const ConvGeometry& g, const CpuWeights& w, const int64_t* offsets,
                const JitTiles::Block& jb, JitWalk walk, const float* bias, const float* residual,
                const ConvAttributes& attrs, const float* in, bool whole, int64_t length, int64_t n, int64_t row_begin,
                int64_t row_end, int64_t col_begin, int64_t col_end, float* y) {
  if (walk == JitWalk::kVirtual) {
    ComputeVirtualJit(k, g, w, offsets, jb, bias, residual, attrs, in, whole, length, n, col_begin, col_end, y);
  } else {
    ComputeRowsJit(k, g, w, offsets, jb, walk, bias, residual, attrs, in, whole, length, n, row_begin, row_end,
                   col_begin, col_end, y);
  }
}

// The output indices o in [0, out) whose input index o + shift lies in [0, in): [lo, hi).
inline void ClipRange(int64_t shift, int64_t in, int64_t out, int64_t* lo, int64_t* hi) {
  *lo = std::max<int64_t>(0, -shift);
  *hi = std::max(*lo, std::min(out, in - shift));
}

// Unit strides and very few nonzeros per channel (depthwise layers, mostly): the output plane
// starts at the bias and takes one scaled, shifted copy of an input plane per nonzero, read
// straight from X with the padding clipped away. No padded copy, no wasted positions.
void SparseConvPlanes(const IsaKernels& k, const ConvGeometry& g, const CpuWeights& w, const float* bias,
                      const float* residual, const ConvAttributes& attrs, const float* x, float* y,
                      const ParallelFor& parallel_for) {
  const AxisGeometry &a0 = g.axes[0], &a1 = g.axes[1], &a2 = g.axes[2];
  const int64_t in_plane = a0.in * a1.in * a2.in;
  parallel_for(g.batch * g.out_channels, [&](int64_t task) {
    const int64_t m = task % g.out_channels, n = task / g.out_channels;
    const int64_t group = m / g.out_channels_per_group;
    const float* image = x + (n * g.in_channels + group * g.in_channels_per_group) * in_plane;
    float* out = y + task * g.out_plane;
    const float b = bias ? bias[m] : 0.0f;
    if (residual) {
      const float* r = residual + task * g.out_plane;
      for (int64_t i = 0; i < g.out_plane; ++i) out[i] = b + r[i];
    } else {
      std::fill(out, out + g.out_plane, b);
    }
    for (int64_t j = w.row_begin(m); j < w.row_end(m); ++j) {
      const Tap& t = w.taps()[j];
      int64_t lo0, hi0, lo1, hi1, lo2, hi2;
      const int64_t s0 = t.k[0] * a0.dilation - a0.pad_begin, s1 = t.k[1] * a1.dilation - a1.pad_begin;
      const int64_t s2 = t.k[2] * a2.dilation - a2.pad_begin;
      ClipRange(s0, a0.in, a0.out, &lo0, &hi0);
      ClipRange(s1, a1.in, a1.out, &lo1, &hi1);
      ClipRange(s2, a2.in, a2.out, &lo2, &hi2);
      if (lo1 >= hi1 || lo2 >= hi2) continue;
      const float* plane = image + t.channel * in_plane;
      for (int64_t o0 = lo0; o0 < hi0; ++o0) {
        k.axpy_2d(w.values()[j], plane + ((o0 + s0) * a1.in + lo1 + s1) * a2.in + lo2 + s2, a2.in,
               out + (o0 * a1.out + lo1) * a2.out + lo2, a2.out, hi1 - lo1, hi2 - lo2);
      }
    }
    k.epilogue(attrs.epilogue, attrs.slope(m), out, g.out_plane);
  });
}

}  // namespace

void SerialFor(int64_t total, const std::function<void(int64_t)>& body) {
  for (int64_t i = 0; i < total; ++i) body(i);
}

const char* JitWalkName(const ConvGeometry& g) {
  switch (JitWalkFor(g)) {
    case JitWalk::kFlat: return "flat";
    case JitWalk::kRows: return "rows";
    case JitWalk::kVirtual: return "virtual";
    case JitWalk::kWindows: return "windows";
  }
  return "virtual";
}

int64_t JitOutStride(const ConvGeometry& g) { return JitWalkFor(g) == JitWalk::kVirtual ? kTile : g.out_plane; }

std::unique_ptr<JitTiles> BuildJitTiles(const CpuWeights& weights, const ConvGeometry& g, bool any_size) {
  if (!any_size && g.out_plane < kJitMinPositions) return nullptr;
  const PhaseLayout layout = JitLayout(g);
  return JitTiles::Build(weights, TapOffsets(weights, layout), layout.channel_stride, g.out_channels_per_group,
                         JitOutStride(g));
}

std::vector<int64_t> TapOffsets(const CpuWeights& weights, const PhaseLayout& l) {
  std::vector<int64_t> offsets(static_cast<size_t>(weights.nnz()));
  const PhaseTap* taps = weights.phase_taps();
  for (int64_t j = 0; j < weights.nnz(); ++j) {
    const PhaseTap& t = taps[j];
    const int64_t phase = (int64_t{t.residue[0]} * l.stride[1] + t.residue[1]) * l.stride[2] + t.residue[2];
    const int64_t inner = (int64_t{t.t[0]} * l.extent[1] + t.t[1]) * l.extent[2] + t.t[2];
    offsets[j] = t.channel * l.channel_stride + phase * l.phase_plane + inner;
  }
  return offsets;
}

bool SameOffsets(const PhaseLayout& a, const PhaseLayout& b) {
  return a.stride == b.stride && a.extent == b.extent && a.phase_plane == b.phase_plane;
}

void SparseConvCpu(const ConvAttributes& attrs, const CpuWeights& weights, const float* bias,
                   const float* residual, const ConvGeometry& g, const float* x, float* y, CpuIsa isa,
                   const ParallelFor& pool_for, const ScratchAllocator& scratch,
                   const std::vector<int64_t>* offsets, const JitTiles* jit) {
  if (g.out_elements == 0) return;
  // A small layer (under kSerialWork multiply-adds, a few microseconds) runs on the calling
  // thread: handing it to the pool's threads would cost about as much as the work itself.
  // Both factors below kSerialWork before multiplying: the product cannot overflow.
  const int64_t positions = g.out_elements / std::max<int64_t>(g.out_channels, 1);
  const bool small = weights.nnz() < kSerialWork && positions < kSerialWork && weights.nnz() * positions < kSerialWork;
  const ParallelFor serial_for = SerialFor;
  const ParallelFor& parallel_for = small ? serial_for : pool_for;
  const IsaKernels& k = KernelsFor(isa);
  const PhaseLayout& l = g.layout;
  const bool unit_strides = l.phases == 1;
  if (UsesPlanePath(unit_strides, weights.nnz(), g.out_channels, g.out_plane)) {
    SparseConvPlanes(k, g, weights, bias, residual, attrs, x, y, parallel_for);
    return;
  }
  std::vector<int64_t> call_offsets;
  if (!offsets || !offsets->size() != !weights.nnz()) {
    call_offsets = TapOffsets(weights, l);
    offsets = &call_offsets;
    jit = nullptr;  // generated for other offsets
  }
  const JitWalk walk = JitWalkFor(g);
  // Code made for another walk (the windows bound depends on X's channels) or layout is not run.
  if (isa != CpuIsa::kAvx512Jit ||
      (jit && (jit->out_stride() != JitOutStride(g) || jit->in_stride() != JitLayout(g).channel_stride))) {
    jit = nullptr;
  }
  const int64_t* offs = offsets->data();
  const AxisGeometry &a0 = g.axes[0], &a1 = g.axes[1], &a2 = g.axes[2];
  const int64_t length = ((a0.out - 1) * l.extent[1] + (a1.out - 1)) * l.extent[2] + a2.out;
  const int64_t in_plane = a0.in * a1.in * a2.in;
  const int64_t group_bytes = g.in_channels_per_group * l.channel_stride * int64_t{sizeof(float)};

  if (jit && walk == JitWalk::kWindows) {
    // One task per window of kJitTaskPositions outputs, of one group of one image.
    const int64_t stride = JitWindowStride(g), columns = a2.out;
    const int64_t windows = (columns + kJitTaskPositions - 1) / kJitTaskPositions;
    parallel_for(g.batch * g.group * windows, [&](int64_t task) {
      const int64_t w = task % windows, group = (task / windows) % g.group, n = task / (windows * g.group);
      thread_local std::vector<float> buffer;
      // A cache line of room to align the windows, and kLanes floats of slack for the last
      // window's whole-vector loads (they reach at most kLanes - 1 floats past it).
      const int64_t used = g.in_channels_per_group * stride + kLanes;
      buffer.resize(static_cast<size_t>(used + kLanes));
      float* windows_buffer = AlignToLine(buffer.data());
      std::fill(windows_buffer + used - kLanes, windows_buffer + used, 0.0f);
      const int64_t c_begin = w * kJitTaskPositions, c_end = std::min(columns, c_begin + kJitTaskPositions);
      const float* x_group = x + (n * g.in_channels + group * g.in_channels_per_group) * in_plane;
      for (int64_t c = 0; c < g.in_channels_per_group; ++c) {
        FillWindow(a2, x_group + c * in_plane, c_begin, stride, windows_buffer + c * stride);
      }
      // The window starts at output column c_begin: Y and Z are passed from there on.
      for (int64_t b = 0; b < jit->blocks_per_group(); ++b) {
        ComputeRowsJit(k, g, weights, offs, jit->block(group * jit->blocks_per_group() + b), JitWalk::kRows, bias,
                       residual ? residual + c_begin : nullptr, attrs, windows_buffer, true, stride, n, 0, 1, 0,
                       c_end - c_begin, y + c_begin);
      }
    });
    return;
  }
  if (l.copy && g.group > 1 && group_bytes <= kGroupBufferBytes) {
    // Small groups: each task pads one group into its thread's buffer and computes its outputs.
    parallel_for(g.batch * g.group, [&](int64_t task) {
      const int64_t n = task / g.group, group = task % g.group;
      thread_local std::vector<float> buffer;
      // kLanes floats of slack, zeroed, for the tiles' whole-vector loads.
      buffer.resize(static_cast<size_t>(g.in_channels_per_group * l.channel_stride + kLanes));
      std::fill(buffer.end() - kLanes, buffer.end(), 0.0f);
      const float* x_group = x + (n * g.in_channels + group * g.in_channels_per_group) * in_plane;
      for (int64_t c = 0; c < g.in_channels_per_group; ++c) {
        k.fill_plane(g, x_group + c * in_plane, buffer.data() + c * l.channel_stride);
      }
      const int64_t m_begin = group * g.out_channels_per_group;
      if (jit) {
        const JitGrid grid = JitGridFor(g, walk, length);
        for (int64_t b = 0; b < jit->blocks_per_group(); ++b) {
          ComputeJit(k, g, weights, offs, jit->block(group * jit->blocks_per_group() + b), walk, bias, residual, attrs,
                     buffer.data(), true, length, n, 0, grid.rows, 0, grid.columns, y);
        }
        return;
      }
      ComputeBlock(k, g, weights, offs, bias, residual, attrs, buffer.data(), true, CpuWeights::kBlocksInL2, n,
                   m_begin, m_begin + g.out_channels_per_group, 0, length, y);
    });
    return;
  }

  const float* src = x;
  if (l.copy) {
    // kLanes floats of slack, zeroed, for the tiles' whole-vector loads.
    const int64_t copied = g.batch * g.in_channels * l.channel_stride;
    float* buffer = scratch(static_cast<size_t>(copied + kLanes));
    std::fill(buffer + copied, buffer + copied + kLanes, 0.0f);
    if (!g.has_padding && unit_strides) {
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
    src = buffer;
  }
  const int64_t position_blocks = (length + kPositionBlock - 1) / kPositionBlock;
  if (jit) {
    // Tasks of about kJitTaskPositions outputs (kVirtual: kPositionBlock), whole rows or a row
    // in chunks. Generated blocks vary fastest: consecutive tasks read the same input window.
    const int64_t blocks = jit->block_count();
    const JitGrid grid = JitGridFor(g, walk, length);
    const int64_t rows = grid.rows, columns = grid.columns;
    const int64_t task_positions = walk == JitWalk::kVirtual ? kPositionBlock : kJitTaskPositions;
    const int64_t row_block = std::max<int64_t>(1, task_positions / columns);
    const int64_t column_block = std::min(columns, task_positions);
    const int64_t row_blocks = (rows + row_block - 1) / row_block;
    const int64_t column_blocks = (columns + column_block - 1) / column_block;
    parallel_for(g.batch * blocks * row_blocks * column_blocks, [&](int64_t task) {
      const JitTiles::Block& jb = jit->block(task % blocks);
      int64_t rest = task / blocks;
      const int64_t cb = rest % column_blocks;
      rest /= column_blocks;
      const int64_t rb = rest % row_blocks, n = rest / row_blocks;
      const int64_t group = jb.m_begin / g.out_channels_per_group;
      const float* in = src + (n * g.in_channels + group * g.in_channels_per_group) * l.channel_stride;
      const int64_t c_begin = cb * column_block, c_end = std::min(columns, c_begin + column_block);
      ComputeJit(k, g, weights, offs, jb, walk, bias, residual, attrs, in, l.copy, length, n, rb * row_block,
                 std::min(rows, (rb + 1) * row_block), c_begin, c_end, y);
    });
    return;
  }
  // Large channel blocks reuse each input window most; smaller ones when needed to give the
  // thread pool enough tasks.
  int64_t channel_block = std::min(g.out_channels_per_group, kChannelBlock);
  while (channel_block > 8 &&
         g.batch * g.group * ((g.out_channels_per_group + channel_block - 1) / channel_block) * position_blocks <
             kMinTasks) {
    channel_block /= 2;
  }
  const int64_t blocks_per_group = (g.out_channels_per_group + channel_block - 1) / channel_block;
  // Finer input-channel blocks where a group's input exceeds L2 (R2 at 70% zeros: 1.3-1.46x; at
  // 90% the plans agree); elsewhere they cost more partial sums than they save (R4: 0.88x).
  const int block_plan =
      group_bytes > kBeyondL2Bytes ? CpuWeights::kBlocksBeyondL2 : CpuWeights::kBlocksInL2;
  const int64_t channel_blocks = g.group * blocks_per_group;
  parallel_for(g.batch * channel_blocks * position_blocks, [&](int64_t task) {
    // Channel blocks vary fastest: consecutive tasks read the same input window from cache.
    const int64_t cb = task % channel_blocks;
    const int64_t pb = (task / channel_blocks) % position_blocks;
    const int64_t n = task / (position_blocks * channel_blocks);
    const int64_t group = cb / blocks_per_group;
    const int64_t m_begin = group * g.out_channels_per_group + (cb % blocks_per_group) * channel_block;
    const int64_t m_end = std::min((group + 1) * g.out_channels_per_group, m_begin + channel_block);
    const float* in = src + (n * g.in_channels + group * g.in_channels_per_group) * l.channel_stride;
    const int64_t p_begin = pb * kPositionBlock;
    ComputeBlock(k, g, weights, offs, bias, residual, attrs, in, l.copy, block_plan, n, m_begin, m_end, p_begin,
                 std::min(length, p_begin + kPositionBlock), y);
  });
}

}  // namespace onnx_sparsify
