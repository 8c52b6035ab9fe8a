// SparseConv on CUDA devices: the launcher's interface. Compiled when nvcc is present; the ORT
// registration for the CUDA execution provider comes with the CUDA issue.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/conv_params.h"
#include "kernels/sparse_weights.h"

namespace onnx_sparsify::cuda {

// Device copy of a packed weight: row_begin [M+1], values and taps [nnz].
struct DeviceWeights {
  const int64_t* row_begin;
  const float* values;
  const Tap* taps;
};

// Y = epilogue(conv(X, W) + B) on `stream`; X, Y and bias are device pointers, bias may be null.
// Reads X directly (padding is handled by bounds checks). Returns the launch status.
cudaError_t LaunchSparseConv(const ConvGeometry& geometry, const Epilogue& epilogue, const DeviceWeights& weights,
                             const float* bias, const float* x, float* y, cudaStream_t stream);

}  // namespace onnx_sparsify::cuda
