// The AVX-512 variants of the hot functions (cpu_tiles.h): the tile with its accumulators in
// registers, a stride-2 fill of the phase buffer, and the plain-loop bodies compiled for AVX-512.
#include <algorithm>
#include <cstring>

#include "kernels/loop_bodies.h"

#ifdef ONNX_SPARSIFY_X86
#include <immintrin.h>
#endif

namespace onnx_sparsify {

#ifdef ONNX_SPARSIFY_X86
namespace {

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

ONNX_SPARSIFY_DEFINE_VARIANTS(Avx512, __attribute__((target("avx512f,avx2,fma"))), V16)

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

}  // namespace

const IsaKernels& Avx512Kernels() {
  static const IsaKernels kAvx512{FillPlaneAvx512Any, TileAvx512, Axpy2DAvx512, EpilogueAvx512};
  return kAvx512;
}
#else
const IsaKernels& Avx512Kernels() { return BaselineKernels(); }
#endif

}  // namespace onnx_sparsify
