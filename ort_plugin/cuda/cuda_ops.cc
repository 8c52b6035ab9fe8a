#include "cuda/cuda_ops.h"

#include <vector>

#include "cuda/sparse_conv_cuda.h"
#include "kernels/contract.h"
#include "kernels/errors.h"
#include "kernels/sparse_conv_cpu.h"
#include "ort/kernel_setup.h"
#include "ort/ort_attributes.h"
#include "ort/ort_status.h"

namespace onnx_sparsify {
namespace {

void CheckCuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw InvalidArgument(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status));
  }
}

template <typename T>
DeviceBuffer Upload(const T* data, size_t count, const char* what) {
  if (count == 0) return DeviceBuffer(nullptr);
  void* p = nullptr;
  CheckCuda(cudaMalloc(&p, count * sizeof(T)), what);
  DeviceBuffer buffer(p);
  CheckCuda(cudaMemcpy(p, data, count * sizeof(T), cudaMemcpyHostToDevice), what);
  return buffer;
}

}  // namespace

SparseConvCudaKernel::SparseConvCudaKernel(const OrtApi& api, const OrtKernelInfo* info, std::string node_name)
    : api_(api), node_name_(std::move(node_name)) {
  NodeSetup setup = ReadNode(api, info);
  attrs_ = setup.attrs;
  weights_ = std::move(setup.weights);
  const int64_t rows = weights_.out_channels();
  std::vector<int64_t> row_begin(rows + 1);
  for (int64_t m = 0; m <= rows; ++m) row_begin[m] = m < rows ? weights_.row_begin(m) : weights_.row_end(rows - 1);
  row_begin_ = Upload(row_begin.data(), row_begin.size(), "uploading W_row_ptr");
  values_ = Upload(weights_.values(), weights_.nnz(), "uploading W_values");
  taps_ = Upload(weights_.taps(), weights_.nnz(), "uploading W_col_indices");
  if (setup.has_bias && !setup.constant_bias) {
    throw InvalidArgument("on the CUDA execution provider, B must be a constant initializer");
  }
  if (setup.constant_bias) {
    has_bias_ = true;
    bias_ = Upload(setup.constant_bias->data(), setup.constant_bias->size(), "uploading B");
  }
}

void SparseConvCudaKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  auto x = ctx.GetInput(kInputX);
  const ConvGeometry geometry = PrepareCall(attrs_, weights_, x.GetTensorTypeAndShapeInfo().GetShape());
  auto y = ctx.GetOutput(0, geometry.OutputShape());
  void* stream = nullptr;  // the stream ORT gives this call; never the default one, never cached
  ThrowIfError(api_, api_.KernelContext_GetGPUComputeStream(context, &stream), "CUDA stream");
  const cuda::DeviceWeights w{static_cast<const int64_t*>(row_begin_.get()), static_cast<const float*>(values_.get()),
                              static_cast<const Tap*>(taps_.get())};
  CheckCuda(cuda::LaunchSparseConv(geometry, attrs_.epilogue, w, has_bias_ ? static_cast<const float*>(bias_.get()) : nullptr,
                                   x.GetTensorData<float>(), y.GetTensorMutableData<float>(),
                                   static_cast<cudaStream_t>(stream)),
            "SparseConv kernel launch");
}

OrtStatusPtr SparseConvCudaKernel::ComputeV2(OrtKernelContext* context) const {
  return StatusFromExceptions(api_, "SparseConv node '" + node_name_ + "'", [&] { Compute(context); });
}

}  // namespace onnx_sparsify
