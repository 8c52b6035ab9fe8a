// The portable variants of the hot functions (cpu_tiles.h), and the table of every instruction
// set's variants.
#include "kernels/loop_bodies.h"

namespace onnx_sparsify {
namespace {

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

ONNX_SPARSIFY_DEFINE_VARIANTS(Baseline, , V4)

}  // namespace

const IsaKernels& BaselineKernels() {
  static const IsaKernels kBaseline{FillPlaneBaseline, TileBaseline, Axpy2DBaseline, EpilogueBaseline};
  return kBaseline;
}

const IsaKernels& KernelsFor(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kAvx512Vnni:
    case CpuIsa::kAvx512: return Avx512Kernels();
    case CpuIsa::kAvx2: return Avx2Kernels();
    case CpuIsa::kBaseline: return BaselineKernels();
  }
  return BaselineKernels();
}

}  // namespace onnx_sparsify
