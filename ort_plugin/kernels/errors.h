#pragma once
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace onnx_sparsify {

// Raised for anything wrong in the model or the inputs. Adapters (ORT, pybind11) turn it into
// their own error type; the ORT adapter prefixes the node name.
class InvalidArgument : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// a * b, or InvalidArgument naming `what` when the product of non-negative sizes overflows int64.
inline int64_t CheckedMul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) {
    throw InvalidArgument(std::string(what) + ": size overflows 64-bit integers");
  }
  return r;
}

inline int64_t CheckedAdd(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) {
    throw InvalidArgument(std::string(what) + ": size overflows 64-bit integers");
  }
  return r;
}

}  // namespace onnx_sparsify
