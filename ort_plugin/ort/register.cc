// The plugin's only exported symbol: ONNX Runtime calls RegisterCustomOps when a session loads
// this library (SessionOptions.register_custom_ops_library).
#include <onnxruntime_cxx_api.h>

#include "kernels/contract.h"
#include "ort/cpu_ops.h"
#include "ort/qconv_ops.h"
#include "ort/ort_status.h"
#ifdef ONNX_SPARSIFY_WITH_CUDA
#include "cuda/cuda_ops.h"
#endif

namespace {

const onnx_sparsify::SparseConvCpuOp& CpuOp() {
  static const onnx_sparsify::SparseConvCpuOp op;
  return op;
}

// SparseQLinearConv, one registration per type of X and Y (ORT merges them into one schema).
const onnx_sparsify::SparseQLinearConvCpuOp<false>& QuantizedU8Op() {
  static const onnx_sparsify::SparseQLinearConvCpuOp<false> op;
  return op;
}
const onnx_sparsify::SparseQLinearConvCpuOp<true>& QuantizedS8Op() {
  static const onnx_sparsify::SparseQLinearConvCpuOp<true> op;
  return op;
}

#ifdef ONNX_SPARSIFY_WITH_CUDA
// Registering touches no CUDA API: the op is instantiated only in sessions that use the CUDA
// execution provider, so the library loads and runs on machines without CUDA.
const onnx_sparsify::SparseConvCudaOp& CudaOp() {
  static const onnx_sparsify::SparseConvCudaOp op;
  return op;
}
#endif

// One domain for every registration, created at the first and destroyed when the library
// unloads (ONNX Runtime unloads it only after the last session and options that loaded it are
// gone). A session keeps only a pointer to it, and it holds only pointers to the static ops; a new
// domain per registration grew by one domain for every session while the library stayed loaded.
Ort::CustomOpDomain& Domain() {
  static Ort::CustomOpDomain domain = [] {
    Ort::CustomOpDomain d(onnx_sparsify::kDomain);
    d.Add(&CpuOp());
    d.Add(&QuantizedU8Op());
    d.Add(&QuantizedS8Op());
#ifdef ONNX_SPARSIFY_WITH_CUDA
    d.Add(&CudaOp());
#endif
    return d;
  }();
  return domain;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base ? api_base->GetApi(ONNX_SPARSIFY_ORT_API) : nullptr;
  if (!api) {
    // This runtime predates API 21 (ONNX Runtime 1.21); report with the oldest API every release has.
    const OrtApi* v1 = api_base ? api_base->GetApi(1) : nullptr;
    return v1 ? v1->CreateStatus(ORT_FAIL, "onnx-sparsify needs ONNX Runtime 1.21 or later") : nullptr;
  }
  Ort::InitApi(api);
  return onnx_sparsify::StatusFromExceptions(*api, "onnx-sparsify: registering custom ops", [&] {
    Ort::UnownedSessionOptions(options).Add(Domain());
  });
}
