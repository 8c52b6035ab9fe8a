// SparseConv for ONNX Runtime's CUDA execution provider (compiled when nvcc is found).
#pragma once
#include <onnxruntime_cxx_api.h>

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

#include "cuda/sparse_conv_cuda.h"
#include "kernels/conv_params.h"
#include "kernels/sparse_weights.h"
#include "ort/sparse_conv_op.h"

namespace onnx_sparsify {

// Device memory on one device, freed there with cudaFree.
class DeviceAllocation {
 public:
  DeviceAllocation(int device, void* p) : device_(device), p_(p) {}
  DeviceAllocation(DeviceAllocation&& o) noexcept : device_(o.device_), p_(o.p_) { o.p_ = nullptr; }
  DeviceAllocation(const DeviceAllocation&) = delete;
  DeviceAllocation& operator=(const DeviceAllocation&) = delete;
  DeviceAllocation& operator=(DeviceAllocation&&) = delete;
  ~DeviceAllocation();

 private:
  int device_;
  void* p_;
};

// One instance per node, created by ORT for the CUDA execution provider. At creation: the CSR
// is validated and packed for the tiled kernel on the host (cuda::PlanCuda), then uploaded once
// to the execution provider's device (from the kernel info's allocator, not the thread's
// current device). Compute only reads members, launches on the stream ORT passes in each call,
// allocates nothing and never synchronizes with the host.
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
  int device_ = 0;
  std::vector<DeviceAllocation> allocations_;  // the plan's, the bias' and the slopes' device arrays
  cuda::DevicePlan plan_;
  const float* bias_ = nullptr;
  const float* slopes_ = nullptr;  // PRelu's, one per output channel
};

struct SparseConvCudaOp : SparseConvOpBase<SparseConvCudaOp, SparseConvCudaKernel> {
  const char* GetExecutionProviderType() const { return "CUDAExecutionProvider"; }
  // The CSR and bias stay on the host, where the kernel reads them once at creation; X and Z
  // are on the device.
  OrtMemType GetInputMemoryType(size_t index) const {
    return index == kInputX || index == kInputResidual ? OrtMemTypeDefault : OrtMemTypeCPUInput;
  }
};

}  // namespace onnx_sparsify
