// The AVX2 variants of the hot functions (cpu_tiles.h). The tile is written with intrinsics, not
// left to the auto-vectorizer: GCC 12.2 at -O3 miscompiles the plain-loop tile for AVX2 (the
// vectorized full-tile loop updates only its first and last 8 lanes; no undefined behaviour
// involved, see docs/performance.md).
#include <algorithm>

#include "kernels/loop_bodies.h"

#ifdef ONNX_SPARSIFY_X86
#include <immintrin.h>
#endif

namespace onnx_sparsify {

#ifdef ONNX_SPARSIFY_X86
namespace {

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

ONNX_SPARSIFY_DEFINE_VARIANTS(Avx2, __attribute__((target("avx2,fma"))), V8)

}  // namespace

const IsaKernels& Avx2Kernels() {
  static const IsaKernels kAvx2{FillPlaneAvx2, TileAvx2, Axpy2DAvx2, EpilogueAvx2};
  return kAvx2;
}
#else
const IsaKernels& Avx2Kernels() { return BaselineKernels(); }
#endif

}  // namespace onnx_sparsify
