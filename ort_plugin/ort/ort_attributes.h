// AttributeSource over ONNX Runtime's two views of a node: the kernel info (kernel creation)
// and the shape-inference context (graph resolution, where no kernel exists yet).
#pragma once
#include <onnxruntime_cxx_api.h>

#include "kernels/conv_params.h"

namespace onnx_sparsify {

class KernelInfoAttributes final : public AttributeSource {
 public:
  KernelInfoAttributes(const OrtApi& api, const OrtKernelInfo* info) : api_(api), info_(info) {}
  std::optional<int64_t> Int(const char* name) const override;
  std::optional<std::vector<int64_t>> Ints(const char* name) const override;
  std::optional<std::vector<float>> Floats(const char* name) const override;
  std::optional<std::string> String(const char* name) const override;

 private:
  // Whether `name` reads as an int, a float, a string or (with `floats`) a non-empty float list.
  bool HasOtherType(const char* name, bool floats) const;
  bool Present(const char* name) const;
  const OrtApi& api_;
  const OrtKernelInfo* info_;
};

class ShapeInferAttributes final : public AttributeSource {
 public:
  ShapeInferAttributes(const OrtApi& api, OrtShapeInferContext* ctx) : api_(api), ctx_(ctx) {}
  std::optional<int64_t> Int(const char* name) const override;
  std::optional<std::vector<int64_t>> Ints(const char* name) const override;
  std::optional<std::vector<float>> Floats(const char* name) const override;
  std::optional<std::string> String(const char* name) const override;

 private:
  const OrtOpAttr* Find(const char* name) const;
  const OrtApi& api_;
  OrtShapeInferContext* ctx_;
};

// Takes ownership of a status; throws InvalidArgument with `context` and ORT's message if set.
void ThrowIfError(const OrtApi& api, OrtStatus* status, const std::string& context);

}  // namespace onnx_sparsify
