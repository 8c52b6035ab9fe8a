#pragma once
#include <onnxruntime_c_api.h>

namespace onnx_sparsify {

// OrtCustomOp::InferOutputShapeFn for SparseConv: Y's shape from X's (symbolic dims kept where
// they pass through, unknown where they do not) and M = len(W_row_ptr) - 1. Also rejects
// attributes and shapes that Conv would reject, so bad models fail at session creation.
OrtStatusPtr ORT_API_CALL InferSparseConvShape(const OrtCustomOp* op, OrtShapeInferContext* ctx);

// The same for SparseQLinearConv: Y has X's element type.
OrtStatusPtr ORT_API_CALL InferSparseQLinearConvShape(const OrtCustomOp* op, OrtShapeInferContext* ctx);

}  // namespace onnx_sparsify
