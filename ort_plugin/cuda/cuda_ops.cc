#include "cuda/cuda_ops.h"

#include <stdexcept>
#include <vector>

#include "cuda/sparse_conv_cuda.h"
#include "kernels/contract.h"
#include "kernels/errors.h"
#include "kernels/sparse_weights.h"
#include "ort/kernel_setup.h"
#include "ort/ort_attributes.h"
#include "ort/ort_status.h"

namespace onnx_sparsify {
namespace {

// A CUDA failure as an exception; ComputeV2 / CreateKernelV2 turn it into an ORT error that
// names the node.
void CheckCuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(status) + " (" +
                             cudaGetErrorString(status) + ")");
  }
}

// Makes `device` current for its lifetime and restores the previous one (cheap, no sync).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    CheckCuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) CheckCuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int now = -1;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

// The execution provider's device: the id of the memory its default allocator hands out.
int ExecutionProviderDevice(const OrtApi& api, const OrtKernelInfo* info) {
  OrtAllocator* allocator = nullptr;
  ThrowIfError(api, api.KernelInfoGetAllocator(info, OrtMemTypeDefault, &allocator), "the CUDA allocator");
  if (!allocator) throw std::runtime_error("ONNX Runtime gave no allocator for the CUDA execution provider");
  struct Release {
    const OrtApi& api;
    OrtAllocator* a;
    ~Release() { api.ReleaseAllocator(a); }
  } release{api, allocator};
  const OrtMemoryInfo* memory = nullptr;
  ThrowIfError(api, api.AllocatorGetInfo(allocator, &memory), "the CUDA allocator's memory info");
  int device = 0;
  ThrowIfError(api, api.MemoryInfoGetId(memory, &device), "the CUDA device id");
  return device;
}

}  // namespace

DeviceAllocation::~DeviceAllocation() {
  if (!p_) return;
  int previous = -1;
  const bool switched = cudaGetDevice(&previous) == cudaSuccess && previous != device_ && cudaSetDevice(device_) == cudaSuccess;
  cudaFree(p_);
  if (switched) cudaSetDevice(previous);
}

SparseConvCudaKernel::SparseConvCudaKernel(const OrtApi& api, const OrtKernelInfo* info, std::string node_name)
    : api_(api), node_name_(std::move(node_name)) {
  NodeSetup setup = ReadNode(api, info);
  attrs_ = setup.attrs;
  weights_ = std::move(setup.weights);
  if (setup.has_bias && !setup.constant_bias) {
    throw InvalidArgument("on the CUDA execution provider, B must be a constant initializer");
  }
  device_ = ExecutionProviderDevice(api, info);
  const cuda::CudaPlan plan = cuda::PlanCuda(attrs_, weights_);
  DeviceGuard guard(device_);
  auto upload = [&](const void* data, size_t bytes) -> void* {
    void* p = nullptr;
    CheckCuda(cudaMalloc(&p, bytes), "uploading the weight (cudaMalloc)");
    allocations_.emplace_back(device_, p);
    CheckCuda(cudaMemcpy(p, data, bytes, cudaMemcpyHostToDevice), "uploading the weight (cudaMemcpy)");
    return p;
  };
  plan_ = cuda::UploadPlan(plan, upload);
  if (setup.constant_bias && !setup.constant_bias->empty()) {
    bias_ = static_cast<const float*>(upload(setup.constant_bias->data(), setup.constant_bias->size() * sizeof(float)));
  }
  const std::vector<float> slopes = attrs_.ChannelSlopes(weights_.out_channels());
  if (!slopes.empty()) slopes_ = static_cast<const float*>(upload(slopes.data(), slopes.size() * sizeof(float)));
}

void SparseConvCudaKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  auto x = ctx.GetInput(kInputX);
  const ConvGeometry geometry = PrepareCall(attrs_, weights_, x.GetTensorTypeAndShapeInfo().GetShape());
  const std::vector<int64_t> y_shape = geometry.OutputShape();
  const float* residual = ResidualInput(ctx, y_shape);
  auto y = ctx.GetOutput(0, y_shape);
  if (geometry.out_elements == 0) return;
  void* stream = nullptr;  // the stream ORT gives this call; never the default one, never cached
  ThrowIfError(api_, api_.KernelContext_GetGPUComputeStream(context, &stream), "CUDA stream");
  DeviceGuard guard(device_);
  CheckCuda(cuda::LaunchSparseConv(geometry, attrs_.epilogue, plan_, bias_, slopes_, residual, x.GetTensorData<float>(),
                                   y.GetTensorMutableData<float>(), static_cast<cudaStream_t>(stream)),
            "the SparseConv kernel launch");
}

OrtStatusPtr SparseConvCudaKernel::ComputeV2(OrtKernelContext* context) const {
  return StatusFromExceptions(api_, "SparseConv node '" + node_name_ + "'", [&] { Compute(context); });
}

}  // namespace onnx_sparsify
