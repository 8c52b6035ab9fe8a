// onnx_sparsify._core.cuda_available and sparse_conv_cuda: the CUDA kernel on device pointers,
// for tests and benchmarks on a GPU machine.
#include "python/binding.h"

#ifdef ONNX_SPARSIFY_WITH_CUDA
#include <cuda_runtime_api.h>

#include <stdexcept>

#include "cuda/sparse_conv_cuda.h"
#endif

namespace onnx_sparsify::python {

#ifdef ONNX_SPARSIFY_WITH_CUDA
namespace {

void CheckCuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

}  // namespace

bool CudaAvailable() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// Runs the CUDA kernel on device memory given as raw pointers (from PyTorch's data_ptr(),
// CuPy's .data.ptr or DLPack). For tests and benchmarks: the weight is packed and uploaded on
// every call, which the ORT plugin does once per node.
void SparseConvCuda(uintptr_t x_ptr, const std::vector<int64_t>& x_shape, uintptr_t y_ptr, const FloatArray& values,
                    const py::array& col_indices, const py::array& row_ptr, const std::optional<FloatArray>& bias,
                    const py::dict& attributes, uintptr_t stream) {
  const ConvAttributes attrs = ConvAttributes::Parse(DictAttributes(attributes));
  SparseWeights weights = col_indices.dtype().is(py::dtype::of<int64_t>())
                              ? PackFrom<int64_t>(values, col_indices, row_ptr, attrs)
                              : PackFrom<int32_t>(values, col_indices, row_ptr, attrs);
  const ConvGeometry g = PrepareCall(attrs, weights, x_shape);
  if (bias && (bias->ndim() != 1 || bias->shape(0) != weights.out_channels())) {
    throw InvalidArgument("B must have shape [" + std::to_string(weights.out_channels()) + "]");
  }
  std::vector<void*> owned;
  struct Free {
    std::vector<void*>& owned;
    ~Free() {
      for (void* p : owned) cudaFree(p);
    }
  } release{owned};
  auto upload = [&](const void* data, size_t bytes) -> void* {
    void* p = nullptr;
    CheckCuda(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
    owned.push_back(p);
    if (bytes) CheckCuda(cudaMemcpy(p, data, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
    return p;
  };
  // The same packing the ORT plugin does once per node (cuda::PlanCuda).
  const cuda::DevicePlan plan = cuda::UploadPlan(cuda::PlanCuda(attrs, weights), upload);
  const float* b = bias ? static_cast<const float*>(upload(bias->data(), bias->size() * sizeof(float))) : nullptr;
  const std::vector<float> slopes = attrs.ChannelSlopes(weights.out_channels());
  const float* sl = slopes.empty() ? nullptr : static_cast<const float*>(upload(slopes.data(), slopes.size() * sizeof(float)));
  auto s = reinterpret_cast<cudaStream_t>(stream);
  py::gil_scoped_release release_gil;
  CheckCuda(cuda::LaunchSparseConv(g, attrs.epilogue, plan, b, sl, nullptr, reinterpret_cast<const float*>(x_ptr),
                                   reinterpret_cast<float*>(y_ptr), s),
            "SparseConv launch");
  CheckCuda(cudaStreamSynchronize(s), "SparseConv");
}
#else
bool CudaAvailable() { return false; }
#endif

}  // namespace onnx_sparsify::python
