#include "ort/ort_attributes.h"

#include <string>

#include "kernels/errors.h"

namespace onnx_sparsify {
namespace {

// Owns an OrtStatus; null means success.
struct StatusGuard {
  const OrtApi& api;
  OrtStatus* status;
  ~StatusGuard() {
    if (status) api.ReleaseStatus(status);
  }
  std::string message() const { return status ? api.GetErrorMessage(status) : ""; }
};

// Whether a getter succeeded (its status released either way).
bool Succeeds(const OrtApi& api, OrtStatus* status) {
  StatusGuard s{api, status};
  return s.status == nullptr;
}

// An attribute's values through an array getter; nullopt when the node has no such attribute.
template <typename T, typename Getter>
std::optional<std::vector<T>> ReadArray(const OrtApi& api, const char* name, Getter get, bool present) {
  size_t size = 0;
  {
    StatusGuard s{api, get(nullptr, &size)};
    if (s.status) {
      if (!present) return std::nullopt;
      throw InvalidArgument(std::string("attribute '") + name + "': " + s.message());
    }
  }
  std::vector<T> out(size);
  if (size > 0) ThrowIfError(api, get(out.data(), &size), std::string("attribute '") + name + "'");
  return out;
}

}  // namespace

void ThrowIfError(const OrtApi& api, OrtStatus* status, const std::string& context) {
  StatusGuard s{api, status};
  if (s.status) throw InvalidArgument(context + ": " + s.message());
}

std::optional<int64_t> KernelInfoAttributes::Int(const char* name) const {
  int64_t value = 0;
  StatusGuard s{api_, api_.KernelInfoGetAttribute_int64(info_, name, &value)};
  if (!s.status) return value;
  if (!Present(name)) return std::nullopt;
  throw InvalidArgument(std::string("attribute '") + name + "' must be an integer: " + s.message());
}

// ORT's array getters report an attribute of another type as an empty array, not as an error:
// an empty result is trusted only when no other type reads the attribute.
std::optional<std::vector<int64_t>> KernelInfoAttributes::Ints(const char* name) const {
  auto ints = ReadArray<int64_t>(api_, name, [&](int64_t* out, size_t* size) {
    return api_.KernelInfoGetAttributeArray_int64(info_, name, out, size);
  }, Present(name));
  if (ints && ints->empty() && HasOtherType(name, /*floats=*/true)) {
    throw InvalidArgument(std::string("attribute '") + name + "' must be a list of integers");
  }
  return ints;
}

// Floats also accept a list of integers (an exporter writing [0, 6] for Clip bounds).
std::optional<std::vector<float>> KernelInfoAttributes::Floats(const char* name) const {
  auto floats = ReadArray<float>(api_, name, [&](float* out, size_t* size) {
    return api_.KernelInfoGetAttributeArray_float(info_, name, out, size);
  }, Present(name));
  if (!floats || !floats->empty()) return floats;
  auto ints = ReadArray<int64_t>(api_, name, [&](int64_t* out, size_t* size) {
    return api_.KernelInfoGetAttributeArray_int64(info_, name, out, size);
  }, true);
  if (ints && !ints->empty()) return std::vector<float>(ints->begin(), ints->end());
  if (HasOtherType(name, /*floats=*/false)) {
    throw InvalidArgument(std::string("attribute '") + name + "' must be a list of numbers");
  }
  return floats;
}

// ORT's getters report an absent attribute and one of another type alike, as an error status
// told apart only by its message (which a release may reword). An attribute is present when some
// getter reads it: the scalar ones, or the array ones (which read another type as empty).
bool KernelInfoAttributes::Present(const char* name) const {
  int64_t i = 0;
  float f = 0.0f;
  size_t size = 0;
  const auto reads = [&](OrtStatus* status) { return Succeeds(api_, status); };
  return reads(api_.KernelInfoGetAttribute_int64(info_, name, &i)) ||
         reads(api_.KernelInfoGetAttribute_float(info_, name, &f)) ||
         reads(api_.KernelInfoGetAttribute_string(info_, name, nullptr, &size)) ||
         reads(api_.KernelInfoGetAttributeArray_int64(info_, name, nullptr, &size)) ||
         reads(api_.KernelInfoGetAttributeArray_float(info_, name, nullptr, &size));
}

bool KernelInfoAttributes::HasOtherType(const char* name, bool floats) const {
  int64_t i = 0;
  float f = 0.0f;
  size_t size = 0;
  const auto reads = [&](OrtStatus* status) { return Succeeds(api_, status); };
  if (reads(api_.KernelInfoGetAttribute_int64(info_, name, &i)) ||
      reads(api_.KernelInfoGetAttribute_float(info_, name, &f)) ||
      reads(api_.KernelInfoGetAttribute_string(info_, name, nullptr, &size))) {
    return true;
  }
  if (!floats) return false;
  size = 0;
  return reads(api_.KernelInfoGetAttributeArray_float(info_, name, nullptr, &size)) && size > 0;
}

std::optional<std::string> KernelInfoAttributes::String(const char* name) const {
  auto chars = ReadArray<char>(api_, name, [&](char* out, size_t* size) {
    return api_.KernelInfoGetAttribute_string(info_, name, out, size);
  }, Present(name));
  if (!chars) return std::nullopt;
  return std::string(chars->data(), chars->empty() ? 0 : chars->size() - 1);  // drop the terminator
}

const OrtOpAttr* ShapeInferAttributes::Find(const char* name) const {
  const OrtOpAttr* attr = nullptr;
  StatusGuard s{api_, api_.ShapeInferContext_GetAttribute(ctx_, name, &attr)};
  return s.status ? nullptr : attr;
}

std::optional<int64_t> ShapeInferAttributes::Int(const char* name) const {
  const OrtOpAttr* attr = Find(name);
  if (!attr) return std::nullopt;
  int64_t value = 0;
  size_t written = 0;
  ThrowIfError(api_, api_.ReadOpAttr(attr, ORT_OP_ATTR_INT, &value, sizeof(value), &written),
               std::string("attribute '") + name + "' must be an integer");
  return value;
}

namespace {
template <typename T>
std::optional<std::vector<T>> ReadOpAttrArray(const OrtApi& api, const OrtOpAttr* attr, OrtOpAttrType type,
                                              const char* name) {
  if (!attr) return std::nullopt;
  size_t bytes = 0;
  {
    // A zero-length read reports the size needed (as an error when it is not zero).
    T probe{};
    StatusGuard s{api, api.ReadOpAttr(attr, type, &probe, 0, &bytes)};
    if (s.status && bytes == 0) throw InvalidArgument(std::string("attribute '") + name + "': " + s.message());
  }
  std::vector<T> out((bytes + sizeof(T) - 1) / sizeof(T));
  if (bytes > 0) {
    ThrowIfError(api, api.ReadOpAttr(attr, type, out.data(), bytes, &bytes), std::string("attribute '") + name + "'");
  }
  return out;
}
}  // namespace

std::optional<std::vector<int64_t>> ShapeInferAttributes::Ints(const char* name) const {
  return ReadOpAttrArray<int64_t>(api_, Find(name), ORT_OP_ATTR_INTS, name);
}

std::optional<std::vector<float>> ShapeInferAttributes::Floats(const char* name) const {
  const OrtOpAttr* attr = Find(name);
  try {
    auto floats = ReadOpAttrArray<float>(api_, attr, ORT_OP_ATTR_FLOATS, name);
    if (!floats || !floats->empty()) return floats;
  } catch (const InvalidArgument&) {
  }
  // A list of integers is accepted as the same numbers (see KernelInfoAttributes::Floats).
  auto ints = ReadOpAttrArray<int64_t>(api_, attr, ORT_OP_ATTR_INTS, name);
  if (!ints) return std::nullopt;
  return std::vector<float>(ints->begin(), ints->end());
}

std::optional<std::string> ShapeInferAttributes::String(const char* name) const {
  auto chars = ReadOpAttrArray<char>(api_, Find(name), ORT_OP_ATTR_STRING, name);
  if (!chars) return std::nullopt;
  return std::string(chars->data(), chars->size());
}

}  // namespace onnx_sparsify
