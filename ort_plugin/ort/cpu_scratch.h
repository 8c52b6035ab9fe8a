// What a CPU kernel's Compute takes from ONNX Runtime for one call: the thread pool as a
// ParallelFor, and scratch memory from ORT's CPU arena (which keeps its memory between calls).
#pragma once
#include <onnxruntime_cxx_api.h>

#include <vector>

#include "kernels/cpu_call.h"

namespace onnx_sparsify {

// ORT's intra-op thread pool for this call, every index its own batch (with num_batch 0 ORT
// runs the whole loop on one thread).
ParallelFor ParallelForOf(const OrtApi& api, OrtKernelContext* context);

// Scratch blocks for one call, freed (and the allocator handle released) when it goes.
class CpuScratch {
 public:
  CpuScratch(const OrtApi& api, Ort::KernelContext& ctx, const Ort::MemoryInfo& memory_info);
  ~CpuScratch();
  CpuScratch(const CpuScratch&) = delete;
  CpuScratch& operator=(const CpuScratch&) = delete;

  const ScratchAllocator& allocator() const { return allocate_; }

 private:
  const OrtApi& api_;
  OrtAllocator* allocator_ = nullptr;
  std::vector<void*> blocks_;
  ScratchAllocator allocate_;
};

}  // namespace onnx_sparsify
