// The SparseConv operator contract shared by every layer of the plugin (docs/operator.md).
// The Python package reads these values (and the epilogue's step table) through _core
// (rewriter/_contract.py).
#pragma once

namespace onnx_sparsify {

inline constexpr const char* kDomain = "org.onnx_sparsify";
inline constexpr const char* kOpType = "SparseConv";
inline constexpr int kOpVersion = 1;

// Input and output positions of SparseConv.
enum SparseConvInput : int {
  kInputX = 0,
  kInputValues = 1,
  kInputColIndices = 2,
  kInputRowPtr = 3,
  kInputBias = 4,
  kInputResidual = 5,  // Z, added before the epilogue (ONNX Runtime's FusedConv has the same)
};
inline constexpr int kNumInputs = 6;

// SparseQLinearConv: QLinearConv's inputs with W as CSR (docs/operator.md). X and Y are uint8 or
// int8 (one registration each); W_values int8, the nonzeros of W minus its zero point.
inline constexpr const char* kQOpType = "SparseQLinearConv";
enum SparseQLinearConvInput : int {
  kQInputX = 0,
  kQInputXScale = 1,
  kQInputXZero = 2,
  kQInputValues = 3,
  kQInputColIndices = 4,
  kQInputRowPtr = 5,
  kQInputWScale = 6,
  kQInputYScale = 7,
  kQInputYZero = 8,
  kQInputBias = 9,
};
inline constexpr int kQNumInputs = 10;

// The most spatial axes (kernel_shape has 1 to 3 values) and epilogue steps SparseConv takes.
inline constexpr int kMaxSpatialRank = 3;
inline constexpr int kMaxEpilogueSteps = 4;

}  // namespace onnx_sparsify
