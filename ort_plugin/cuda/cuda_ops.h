// SparseConv for ONNX Runtime's CUDA execution provider (compiled when nvcc is found).
#pragma once
#include <onnxruntime_cxx_api.h>

#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "kernels/conv_params.h"
#include "kernels/sparse_weights.h"
#include "ort/sparse_conv_op.h"

namespace onnx_sparsify {

// Device memory freed with cudaFree.
struct DeviceFree {
  void operator()(void* p) const { cudaFree(p); }
};
using DeviceBuffer = std::unique_ptr<void, DeviceFree>;

// One instance per node: the CSR is validated and packed on the host, then uploaded once.
// Compute only reads members and launches on the stream ORT passes in.
class SparseConvCudaKernel {
 public:
  SparseConvCudaKernel(const OrtApi& api, const OrtKernelInfo* info, std::string node_name);
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  void Compute(OrtKernelContext* context) const;

  const OrtApi& api_;
  std::string node_name_;
  ConvAttributes attrs_;
  SparseWeights weights_;
  DeviceBuffer row_begin_, values_, taps_, bias_;
  bool has_bias_ = false;
};

struct SparseConvCudaOp : SparseConvOpBase<SparseConvCudaOp, SparseConvCudaKernel> {
  const char* GetExecutionProviderType() const { return "CUDAExecutionProvider"; }
  // The CSR and bias stay on the host, where the kernel reads them once at creation.
  OrtMemType GetInputMemoryType(size_t index) const { return index == 0 ? OrtMemTypeDefault : OrtMemTypeCPUInput; }
};

}  // namespace onnx_sparsify
