// The plugin's only exported symbol: ONNX Runtime calls RegisterCustomOps when a session loads
// this library (SessionOptions.register_custom_ops_library).
#include <onnxruntime_cxx_api.h>

#include <memory>
#include <mutex>
#include <vector>

#include "kernels/contract.h"
#include "ort/cpu_ops.h"
#include "ort/ort_status.h"

namespace {

// Domains must outlive every session that uses them; they live until the library unloads.
std::vector<std::unique_ptr<Ort::CustomOpDomain>>& Domains() {
  static std::vector<std::unique_ptr<Ort::CustomOpDomain>> domains;
  return domains;
}
std::mutex domains_mutex;

const onnx_sparsify::SparseConvCpuOp& CpuOp() {
  static const onnx_sparsify::SparseConvCpuOp op;
  return op;
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
    auto domain = std::make_unique<Ort::CustomOpDomain>(onnx_sparsify::kDomain);
    domain->Add(&CpuOp());
    Ort::UnownedSessionOptions(options).Add(*domain);
    std::lock_guard<std::mutex> lock(domains_mutex);
    Domains().push_back(std::move(domain));
  });
}
