#include "ort/cpu_scratch.h"

#include <new>

#include "kernels/errors.h"
#include "ort/ort_attributes.h"

namespace onnx_sparsify {
namespace {

void ParallelTrampoline(void* data, size_t i) {
  (*static_cast<const std::function<void(int64_t)>*>(data))(static_cast<int64_t>(i));
}

}  // namespace

ParallelFor ParallelForOf(const OrtApi& api, OrtKernelContext* context) {
  return [&api, context](int64_t total, const std::function<void(int64_t)>& body) {
    if (total <= 0) return;
    const auto n = static_cast<size_t>(total);
    ThrowIfError(api,
                 api.KernelContext_ParallelFor(context, ParallelTrampoline, n, n,
                                               const_cast<std::function<void(int64_t)>*>(&body)),
                 "thread pool");
  };
}

CpuScratch::CpuScratch(const OrtApi& api, Ort::KernelContext& ctx, const Ort::MemoryInfo& memory_info)
    : api_(api), allocator_(ctx.GetAllocator(*static_cast<const OrtMemoryInfo*>(memory_info))) {
  // KernelContext_GetAllocator hands out a handle that is ours to release, after its blocks.
  if (!allocator_) throw InvalidArgument("no CPU allocator");
  allocate_ = [this](size_t n) {
    void* p = allocator_->Alloc(allocator_, n * sizeof(float));
    if (!p) throw std::bad_alloc();
    blocks_.push_back(p);
    return static_cast<float*>(p);
  };
}

CpuScratch::~CpuScratch() {
  for (void* p : blocks_) allocator_->Free(allocator_, p);
  api_.ReleaseAllocator(allocator_);
}

}  // namespace onnx_sparsify
