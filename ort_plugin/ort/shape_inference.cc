#include "ort/shape_inference.h"

#include <atomic>
#include <string>

#include <onnxruntime_cxx_api.h>

#include "kernels/contract.h"
#include "kernels/errors.h"
#include "ort/ort_attributes.h"
#include "ort/ort_status.h"

namespace onnx_sparsify {
namespace {

// One dimension: a known size, a named symbol, or unknown (-1 with no name).
struct Dim {
  int64_t value = -1;
  std::string symbol;
};

std::vector<Dim> InputShape(const OrtApi& api, OrtShapeInferContext* ctx, size_t index) {
  OrtTensorTypeAndShapeInfo* info = nullptr;
  ThrowIfError(api, api.ShapeInferContext_GetInputTypeShape(ctx, index, &info), "input shape");
  Ort::ConstTensorTypeAndShapeInfo view(info);  // owned by the context
  const auto values = view.GetShape();
  std::vector<const char*> symbols(values.size(), nullptr);
  if (!values.empty()) view.GetSymbolicDimensions(symbols.data(), symbols.size());
  std::vector<Dim> dims(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    dims[i].value = values[i];
    if (symbols[i]) dims[i].symbol = symbols[i];
  }
  return dims;
}

// A symbol no other dimension has: ORT reads a -1 without a name as the size -1.
std::string FreshSymbol() {
  static std::atomic<uint64_t> counter{0};
  return "sparseconv_dim_" + std::to_string(counter++);
}

// Output size of spatial axis i: computed when the input size is known; when it is a symbol,
// a symbol named after it and the axis' parameters, so equal names mean equal sizes.
Dim OutputDim(const ConvAttributes& attrs, int i, const Dim& in) {
  Dim d;
  if (in.value > 0) {
    d.value = ResolveAxis(attrs, i, in.value).out;
  } else if (!in.symbol.empty()) {
    const int k = attrs.spatial_rank();
    static const char* kAutoPad[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"};
    d.symbol = "conv(" + in.symbol + ",k=" + std::to_string(attrs.kernel_shape[i]) +
               ",s=" + std::to_string(attrs.strides[i]) + ",d=" + std::to_string(attrs.dilations[i]) +
               ",p=" + std::to_string(attrs.pads[i]) + "+" + std::to_string(attrs.pads[i + k]) + "," +
               kAutoPad[static_cast<int>(attrs.auto_pad)] + ")";
  }
  return d;
}

// Y's shape for an op whose X is input 0 and whose W_row_ptr is input `row_ptr_index`; Y's
// element type is float, or X's when `output_like_x`.
void InferShape(const OrtApi& api, OrtShapeInferContext* ctx, size_t row_ptr_index, bool output_like_x) {
  const ConvAttributes attrs = ConvAttributes::Parse(ShapeInferAttributes(api, ctx));
  size_t num_inputs = 0;
  ThrowIfError(api, api.ShapeInferContext_GetInputCount(ctx, &num_inputs), "input count");
  if (num_inputs < row_ptr_index + 1) throw InvalidArgument("the node lacks inputs: W_row_ptr is input " +
                                                            std::to_string(row_ptr_index));

  const int k = attrs.spatial_rank();
  std::vector<Dim> x = InputShape(api, ctx, kInputX);
  if (x.empty()) x.resize(k + 2);  // rank unknown: all dims unknown
  if (static_cast<int>(x.size()) != k + 2) {
    throw InvalidArgument("input X has rank " + std::to_string(x.size()) + " but kernel_shape needs rank " +
                          std::to_string(k + 2));
  }
  if (x[1].value > 0 && attrs.in_channels_per_group > 0 && x[1].value != attrs.in_channels()) {
    throw InvalidArgument("input X has " + std::to_string(x[1].value) + " channels but the weight expects " +
                          std::to_string(attrs.in_channels()) +
                          " (group x in_channels_per_group)");
  }
  if (x[1].value > 0 && x[1].value % attrs.group != 0) {
    throw InvalidArgument("input channels " + std::to_string(x[1].value) + " are not divisible by group " +
                          std::to_string(attrs.group));
  }
  const std::vector<Dim> row_ptr = InputShape(api, ctx, row_ptr_index);
  Dim out_channels;
  if (row_ptr.size() == 1 && row_ptr[0].value >= 2) {
    out_channels.value = row_ptr[0].value - 1;
    if (out_channels.value % attrs.group != 0) {
      throw InvalidArgument("W_row_ptr describes " + std::to_string(out_channels.value) +
                            " output channels, not divisible by group " + std::to_string(attrs.group));
    }
  }

  std::vector<Dim> y = {x[0], out_channels};
  for (int i = 0; i < k; ++i) y.push_back(OutputDim(attrs, i, x[2 + i]));

  for (Dim& d : y) {
    if (d.value < 0 && d.symbol.empty()) d.symbol = FreshSymbol();
  }
  std::vector<int64_t> values;
  std::vector<const char*> symbols;
  for (const Dim& d : y) {
    values.push_back(d.symbol.empty() ? d.value : -1);
    symbols.push_back(d.symbol.c_str());
  }
  OrtTensorTypeAndShapeInfo* info = nullptr;
  ThrowIfError(api, api.CreateTensorTypeAndShapeInfo(&info), "output shape");
  Ort::TensorTypeAndShapeInfo owned(info);
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  if (output_like_x) {
    OrtTensorTypeAndShapeInfo* x_info = nullptr;
    ThrowIfError(api, api.ShapeInferContext_GetInputTypeShape(ctx, kInputX, &x_info), "input type");
    type = Ort::ConstTensorTypeAndShapeInfo(x_info).GetElementType();
  }
  ThrowIfError(api, api.SetTensorElementType(info, type), "output type");
  ThrowIfError(api, api.SetDimensions(info, values.data(), values.size()), "output shape");
  ThrowIfError(api, api.SetSymbolicDimensions(info, symbols.data(), symbols.size()), "output shape");
  ThrowIfError(api, api.ShapeInferContext_SetOutputTypeShape(ctx, 0, info), "output shape");
}

}  // namespace

OrtStatusPtr ORT_API_CALL InferSparseConvShape(const OrtCustomOp*, OrtShapeInferContext* ctx) {
  const OrtApi& api = Ort::GetApi();
  return StatusFromExceptions(api, "SparseConv shape inference", [&] { InferShape(api, ctx, kInputRowPtr, false); });
}

OrtStatusPtr ORT_API_CALL InferSparseQLinearConvShape(const OrtCustomOp*, OrtShapeInferContext* ctx) {
  const OrtApi& api = Ort::GetApi();
  return StatusFromExceptions(api, "SparseQLinearConv shape inference",
                              [&] { InferShape(api, ctx, kQInputRowPtr, true); });
}

}  // namespace onnx_sparsify
