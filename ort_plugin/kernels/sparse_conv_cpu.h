// SparseConv on the CPU: direct convolution over the nonzeros, output positions as the vector
// dimension. Knows nothing of ONNX Runtime; the caller supplies the thread pool.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "conv_params.h"
#include "cpu_isa.h"
#include "jit_tiles.h"
#include "cpu_weights.h"
#include "sparse_weights.h"

namespace onnx_sparsify {

// Runs body(i) for every i in [0, total), possibly in parallel; body never throws.
using ParallelFor = std::function<void(int64_t total, const std::function<void(int64_t)>& body)>;

// Runs body(i) for i in [0, total) on the calling thread.
void SerialFor(int64_t total, const std::function<void(int64_t)>& body);

// Each nonzero's element offset in the phase-decomposed input of `layout` (sparse_conv_cpu.cc).
// Kernels compute it once for the input shape the model declares.
std::vector<int64_t> TapOffsets(const CpuWeights& weights, const PhaseLayout& layout);

// The generated code (jit_tiles.h) for a layer of geometry `g`; null where none can be made
// or, unless `any_size`, where the layer's output planes are too small for it to pay.
// SparseConvCpu runs it for calls of the same geometry.
std::unique_ptr<JitTiles> BuildJitTiles(const CpuWeights& weights, const ConvGeometry& g, bool any_size = false);

// The output stride (floats between channels) the generated code for geometry `g` writes with.
int64_t JitOutStride(const ConvGeometry& g);

// How that code walks the outputs: "flat", "rows", "virtual" or "windows" (sparse_conv_cpu.cc,
// JitWalk).
const char* JitWalkName(const ConvGeometry& g);

// Whether offsets computed for one layout hold for the other.
bool SameOffsets(const PhaseLayout& a, const PhaseLayout& b);

// Returns n floats of scratch memory valid for the rest of the call (an arena, ideally: a fresh
// large allocation per call costs page faults).
using ScratchAllocator = std::function<float*(size_t n)>;

// Y = epilogue(conv(X, W) + B + Z). X, Y and Z are dense NCHW-style tensors matching
// `geometry` (Z, the residual input, has Y's shape); bias is null or holds M values; residual
// is null or Z; `geometry` comes from PrepareCall. `offsets` are
// TapOffsets(weights, geometry.layout), or null to compute them here. `isa` selects the
// variant of the hot loops; the CPU must support it (CpuSupports). `jit` is null or
// BuildJitTiles(weights, geometry); it runs where `isa` is kAvx512Jit and the layer takes the
// tile path. Throws only if `scratch` does.
void SparseConvCpu(const ConvAttributes& attrs, const CpuWeights& weights, const float* bias,
                   const float* residual, const ConvGeometry& geometry, const float* x, float* y, CpuIsa isa,
                   const ParallelFor& parallel_for, const ScratchAllocator& scratch,
                   const std::vector<int64_t>* offsets = nullptr, const JitTiles* jit = nullptr);

}  // namespace onnx_sparsify
