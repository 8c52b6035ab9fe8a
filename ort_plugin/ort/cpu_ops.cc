#include "ort/cpu_ops.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "kernels/contract.h"
#include "kernels/errors.h"
#include "kernels/sparse_conv_cpu.h"
#include "ort/ort_attributes.h"
#include "ort/kernel_setup.h"
#include "ort/ort_status.h"

namespace onnx_sparsify {
namespace {

void ParallelTrampoline(void* data, size_t i) {
  (*static_cast<const std::function<void(int64_t)>*>(data))(static_cast<int64_t>(i));
}

}  // namespace

SparseConvCpuKernel::SparseConvCpuKernel(const OrtApi& api, const OrtKernelInfo* info, std::string node_name)
    : api_(api), node_name_(std::move(node_name)) {
  cpu_memory_info_ = std::make_unique<Ort::MemoryInfo>(Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault));
  NodeSetup setup = ReadNode(api, info);
  attrs_ = setup.attrs;
  weights_ = CpuWeights(std::move(setup.weights), attrs_);
  const CpuIsa isa = SelectedCpuIsa();
  const CpuStrategy strategy = SelectedCpuStrategy(isa);
  const std::vector<int64_t> planned = attrs_.PlannedInputShape(setup.x_shape);  // a contradicting hint throws
  try {
    plan_ = CpuPlan::Make(attrs_, weights_, isa, strategy, planned);
  } catch (const InvalidArgument&) {
    // input_shape_hint is for speed only: a hint no input could run with (a kernel larger than
    // its padded input) prepares nothing, and each call's shape is checked as it comes.
    if (!attrs_.PlansFromHint(setup.x_shape)) throw;
    plan_ = CpuPlan::Make(attrs_, weights_, isa, strategy, {});
  }
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
  // Every task its own batch: with num_batch 0, ORT runs the whole loop on one thread.
  const ParallelFor parallel_for = [&](int64_t total, const std::function<void(int64_t)>& body) {
    if (total <= 0) return;
    const auto n = static_cast<size_t>(total);
    ThrowIfError(api_,
                 api_.KernelContext_ParallelFor(context, ParallelTrampoline, n, n,
                                                const_cast<std::function<void(int64_t)>*>(&body)),
                 "thread pool");
  };
  // Scratch from ORT's CPU arena, which keeps its memory between calls. The allocator handle
  // is ours to release (KernelContext_GetAllocator), after the blocks it gave out.
  OrtAllocator* raw_allocator = ctx.GetAllocator(*static_cast<const OrtMemoryInfo*>(*cpu_memory_info_));
  if (!raw_allocator) throw InvalidArgument("no CPU allocator");
  const auto release_allocator = [this](OrtAllocator* a) { api_.ReleaseAllocator(a); };
  const std::unique_ptr<OrtAllocator, decltype(release_allocator)> allocator(raw_allocator, release_allocator);
  std::vector<void*> blocks;
  struct FreeBlocks {
    OrtAllocator* allocator;
    std::vector<void*>& blocks;
    ~FreeBlocks() {
      for (void* p : blocks) allocator->Free(allocator, p);
    }
  } free_blocks{allocator.get(), blocks};
  const ScratchAllocator scratch = [&](size_t n) {
    void* p = allocator->Alloc(allocator.get(), n * sizeof(float));
    if (!p) throw std::bad_alloc();
    blocks.push_back(p);
    return static_cast<float*>(p);
  };
  SparseConvCpu(plan_, attrs_, weights_, bias, residual, geometry, x.GetTensorData<float>(),
                y.GetTensorMutableData<float>(), parallel_for, scratch);
}

OrtStatusPtr SparseConvCpuKernel::ComputeV2(OrtKernelContext* context) const {
  return StatusFromExceptions(api_, "SparseConv node '" + node_name_ + "'", [&] { Compute(context); });
}

}  // namespace onnx_sparsify
