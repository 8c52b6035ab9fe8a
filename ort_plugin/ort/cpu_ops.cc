#include "ort/cpu_ops.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "kernels/contract.h"
#include "kernels/errors.h"
#include "kernels/sparse_conv_cpu.h"
#include "ort/cpu_scratch.h"
#include "ort/ort_attributes.h"
#include "ort/kernel_setup.h"
#include "ort/ort_status.h"

namespace onnx_sparsify {
SparseConvCpuKernel::SparseConvCpuKernel(const OrtApi& api, const OrtKernelInfo* info, std::string node_name)
    : api_(api), node_name_(std::move(node_name)) {
  cpu_memory_info_ = std::make_unique<Ort::MemoryInfo>(Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault));
  NodeSetup setup = ReadNode(api, info);
  attrs_ = setup.attrs;
  weights_ = CpuWeights(std::move(setup.weights), attrs_);
  const CpuIsa isa = SelectedCpuIsa();
  const CpuStrategy strategy = SelectedCpuStrategy(isa);
  plan_ = PlanForNode(attrs_, setup.x_shape, [&](const std::vector<int64_t>& shape) {
    return CpuPlan::Make(attrs_, weights_, isa, strategy, shape);
  });
  has_bias_input_ = setup.has_bias;
  constant_bias_ = std::move(setup.constant_bias);
}

void SparseConvCpuKernel::Compute(OrtKernelContext* context) const {
  Ort::KernelContext ctx(context);
  auto x = ctx.GetInput(kInputX);
  const ConvGeometry geometry = PrepareCall(attrs_, weights_, x.GetTensorTypeAndShapeInfo().GetShape());

  const float* bias = constant_bias_ ? constant_bias_->data() : nullptr;
  if (has_bias_input_ && !constant_bias_ && ctx.GetInputCount() > kInputBias) {
    auto b = ctx.GetInput(kInputBias);
    if (b) {
      auto info = b.GetTensorTypeAndShapeInfo();
      const auto shape = info.GetShape();
      if (shape.size() != 1 || shape[0] != weights_.out_channels()) {
        throw InvalidArgument("B must have shape [" + std::to_string(weights_.out_channels()) + "]");
      }
      bias = b.GetTensorData<float>();
    }
  }

  const std::vector<int64_t> y_shape = geometry.OutputShape();
  const float* residual = ResidualInput(ctx, y_shape);
  auto y = ctx.GetOutput(0, y_shape);
  CpuScratch scratch(api_, ctx, *cpu_memory_info_);
  SparseConvCpu(plan_, attrs_, weights_, bias, residual, geometry, x.GetTensorData<float>(),
                y.GetTensorMutableData<float>(), ParallelForOf(api_, context), scratch.allocator());
}

OrtStatusPtr SparseConvCpuKernel::ComputeV2(OrtKernelContext* context) const {
  return StatusFromExceptions(api_, "SparseConv node '" + node_name_ + "'", [&] { Compute(context); });
}

}  // namespace onnx_sparsify
