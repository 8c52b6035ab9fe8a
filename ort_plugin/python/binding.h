// What the pybind11 entry points share: NumPy arrays in, SparseConv's attributes from a dict,
// CSR weights packed exactly as the ORT plugin packs them.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/conv_params.h"
#include "kernels/errors.h"
#include "kernels/sparse_weights.h"

namespace onnx_sparsify::python {

namespace py = pybind11;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

class DictAttributes final : public AttributeSource {
 public:
  explicit DictAttributes(const py::dict& d) : d_(d) {}
  std::optional<int64_t> Int(const char* name) const override { return Get<int64_t>(name); }
  std::optional<std::vector<int64_t>> Ints(const char* name) const override { return Get<std::vector<int64_t>>(name); }
  std::optional<std::vector<float>> Floats(const char* name) const override { return Get<std::vector<float>>(name); }
  std::optional<std::string> String(const char* name) const override { return Get<std::string>(name); }

 private:
  template <typename T>
  std::optional<T> Get(const char* name) const {
    if (!d_.contains(name) || d_[name].is_none()) return std::nullopt;
    try {
      return d_[name].cast<T>();
    } catch (const py::cast_error&) {
      throw InvalidArgument(std::string("attribute '") + name + "' has the wrong type");
    }
  }
  const py::dict& d_;
};

template <typename Index>
inline SparseWeights PackFrom(const FloatArray& values, const py::array& cols, const py::array& row_ptr,
                       const ConvAttributes& attrs) {
  auto c = py::array_t<Index, py::array::c_style>::ensure(cols);
  auto r = py::array_t<Index, py::array::c_style>::ensure(row_ptr);
  if (!c || !r) throw InvalidArgument("W_col_indices and W_row_ptr must be 1-D integer arrays");
  return SparseWeights::Pack(CsrView<Index>{values.data(), values.size(), c.data(), c.size(), r.data(), r.size()},
                             attrs, attrs.in_channels());
}

// cpu_entry.cc: the CPU kernel on NumPy arrays.
py::array_t<float> SparseConv(const FloatArray& x, const FloatArray& values, const py::array& col_indices,
                              const py::array& row_ptr, const std::optional<FloatArray>& bias, const py::dict& attributes,
                              int threads, std::optional<py::array> out, const std::optional<std::string>& isa_name,
                              const std::optional<std::string>& strategy_name,
                              const std::optional<FloatArray>& residual);

// cpu_entry.cc: SparseQLinearConv on the CPU (docs/operator.md) on NumPy arrays: x uint8 or
// int8 (Y has its type), W_values int8, B int32; `isa` and `strategy` as for SparseConv.
py::array SparseQLinearConv(const py::array& x, float x_scale, int32_t x_zero_point, const py::array& values,
                            const py::array& col_indices, const py::array& row_ptr, const FloatArray& w_scale,
                            float y_scale, int32_t y_zero_point, const std::optional<py::array>& bias,
                            const py::dict& attributes, int threads, const std::optional<std::string>& isa_name,
                            const std::optional<std::string>& strategy_name);

// cpu_entry.cc: the CPU plan (cpu_plan.h) made for a layer and input shape: its instruction set
// and strategy, the path a call takes, its generated code's size in bytes, blocks and lanes (0
// where none is made) and how that code walks the outputs.
py::dict PlanInfo(const std::vector<int64_t>& x_shape, const FloatArray& values, const py::array& col_indices,
                  const py::array& row_ptr, const py::dict& attributes, bool any_size,
                  const std::optional<std::string>& isa_name, const std::optional<std::string>& strategy_name);

// cuda_entry.cc: whether a CUDA device is usable (false in a build without CUDA) and the CUDA
// kernel on device pointers (CUDA builds only).
bool CudaAvailable();
#ifdef ONNX_SPARSIFY_WITH_CUDA
void SparseConvCuda(uintptr_t x_ptr, const std::vector<int64_t>& x_shape, uintptr_t y_ptr, const FloatArray& values,
                    const py::array& col_indices, const py::array& row_ptr, const std::optional<FloatArray>& bias,
                    const py::dict& attributes, uintptr_t stream);
#endif

}  // namespace onnx_sparsify::python
