// onnx_sparsify._core.sparse_conv: the CPU kernel on NumPy arrays, for tests and benchmarks,
// parallelised by a plain thread pool (the plugin uses ORT's).
#include <algorithm>
#include <atomic>
#include <functional>
#include <thread>

#include "kernels/cpu_isa.h"
#include "kernels/cpu_plan.h"
#include "kernels/jit_walks.h"
#include "kernels/sparse_conv_cpu.h"
#include "kernels/sparse_qconv_cpu.h"
#include "python/binding.h"

namespace onnx_sparsify::python {
namespace {

// A plain thread pool for the binding: `threads` workers pull indices from a shared counter.
ParallelFor ThreadedFor(int threads) {
  return [threads](int64_t total, const std::function<void(int64_t)>& body) {
    const int workers = static_cast<int>(std::min<int64_t>(threads, total));
    if (workers <= 1) return SerialFor(total, body);
    std::atomic<int64_t> next{0};
    auto work = [&] {
      for (int64_t i = next++; i < total; i = next++) body(i);
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < workers; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
  };
}

// The instruction set and strategy a call runs: the arguments where given, else as the plugin
// chooses (cpu_isa.h).
CpuIsa CallIsa(const std::optional<std::string>& isa) {
  return isa ? CpuIsaNamed(*isa, "isa='" + *isa + "'") : SelectedCpuIsa();
}

CpuStrategy CallStrategy(const std::optional<std::string>& strategy, CpuIsa isa) {
  return strategy ? CpuStrategyNamed(*strategy, isa, "strategy='" + *strategy + "'") : SelectedCpuStrategy(isa);
}

// The CSR inputs packed as the plugin packs them.
SparseWeights PackWeights(const FloatArray& values, const py::array& col_indices, const py::array& row_ptr,
                          const ConvAttributes& attrs) {
  if (values.ndim() != 1 || col_indices.ndim() != 1 || row_ptr.ndim() != 1) {
    throw InvalidArgument("W_values, W_col_indices and W_row_ptr must be 1-D");
  }
  if (!col_indices.dtype().is(row_ptr.dtype())) {
    throw InvalidArgument("W_col_indices and W_row_ptr must have the same integer type (both int32 or both int64)");
  }
  if (col_indices.dtype().is(py::dtype::of<int32_t>())) return PackFrom<int32_t>(values, col_indices, row_ptr, attrs);
  if (col_indices.dtype().is(py::dtype::of<int64_t>())) return PackFrom<int64_t>(values, col_indices, row_ptr, attrs);
  throw InvalidArgument("W_col_indices and W_row_ptr must be int32 or int64");
}

}  // namespace

py::array_t<float> SparseConv(const FloatArray& x, const FloatArray& values, const py::array& col_indices,
                              const py::array& row_ptr, const std::optional<FloatArray>& bias, const py::dict& attributes,
                              int threads, std::optional<py::array> out, const std::optional<std::string>& isa_name,
                              const std::optional<std::string>& strategy_name,
                              const std::optional<FloatArray>& residual) {
  const CpuIsa isa = CallIsa(isa_name);
  const CpuStrategy strategy = CallStrategy(strategy_name, isa);
  const ConvAttributes attrs = ConvAttributes::Parse(DictAttributes(attributes));
  const CpuWeights weights(PackWeights(values, col_indices, row_ptr, attrs), attrs);
  const std::vector<int64_t> x_shape(x.shape(), x.shape() + x.ndim());
  const ConvGeometry g = PrepareCall(attrs, weights, x_shape);
  if (bias && (bias->ndim() != 1 || bias->shape(0) != weights.out_channels())) {
    throw InvalidArgument("B must have shape [" + std::to_string(weights.out_channels()) + "]");
  }
  const std::vector<int64_t> y_shape = g.OutputShape();
  if (out) {
    // Checked as given: a cast would write into a converted copy and leave `out` untouched.
    const bool same = out->dtype().is(py::dtype::of<float>()) &&
                      out->ndim() == static_cast<py::ssize_t>(y_shape.size()) &&
                      std::equal(y_shape.begin(), y_shape.end(), out->shape()) &&
                      (out->flags() & py::array::c_style) && out->writeable();
    if (!same) throw InvalidArgument("out must be a writable C-contiguous float32 array of the output shape");
  }
  py::array_t<float> y = out ? py::array_t<float>::ensure(*out)
                             : py::array_t<float>(std::vector<py::ssize_t>(y_shape.begin(), y_shape.end()));
  // The four-iterator std::equal compares the lengths too.
  if (residual && !std::equal(y_shape.begin(), y_shape.end(), residual->shape(),
                              residual->shape() + residual->ndim())) {
    throw InvalidArgument("residual must have the output's shape");
  }
  const float* b = bias ? bias->data() : nullptr;
  const float* z = residual ? residual->data() : nullptr;
  float* y_data = y.mutable_data();
  {
    py::gil_scoped_release release;
    std::vector<std::vector<float>> blocks;
    const ScratchAllocator scratch = [&](size_t n) {
      blocks.emplace_back(n);
      return blocks.back().data();
    };
    // The plan is made for this call, with code for a layer of any size, so that tests reach
    // the generated code on small layers too (the plugin skips those).
    const CpuPlan plan = CpuPlan::Make(attrs, weights, isa, strategy, x_shape, /*any_size=*/true);
    SparseConvCpu(plan, attrs, weights, b, z, g, x.data(), y_data, ThreadedFor(std::max(1, threads)), scratch);
  }
  return y;
}

py::dict PlanInfo(const std::vector<int64_t>& x_shape, const FloatArray& values, const py::array& col_indices,
                  const py::array& row_ptr, const py::dict& attributes, bool any_size,
                  const std::optional<std::string>& isa_name, const std::optional<std::string>& strategy_name) {
  const CpuIsa isa = CallIsa(isa_name);
  const CpuStrategy strategy = CallStrategy(strategy_name, isa);
  const ConvAttributes attrs = ConvAttributes::Parse(DictAttributes(attributes));
  const CpuWeights weights(PackWeights(values, col_indices, row_ptr, attrs), attrs);
  const ConvGeometry g = PrepareCall(attrs, weights, x_shape);
  const CpuPlan plan = CpuPlan::Make(attrs, weights, isa, strategy, x_shape, any_size);
  const JitTiles* code = plan.CodeFor(g);
  py::dict d;
  d["isa"] = CpuIsaName(isa);
  d["strategy"] = CpuStrategyName(strategy);
  d["path"] = CpuPathName(ChooseCpuPath(g, weights, code));
  d["code_bytes"] = code ? code->code_bytes() : 0;
  d["blocks"] = code ? code->block_count() : 0;
  d["lanes"] = code ? code->lanes() : 0;
  d["walk"] = JitWalkName(JitWalkFor(g));
  return d;
}

py::array SparseQLinearConv(const py::array& x, float x_scale, int32_t x_zero_point, const py::array& values,
                            const py::array& col_indices, const py::array& row_ptr, const FloatArray& w_scale,
                            float y_scale, int32_t y_zero_point, const std::optional<py::array>& bias,
                            const py::dict& attributes, int threads, const std::optional<std::string>& isa_name,
                            const std::optional<std::string>& strategy_name) {
  const CpuIsa isa = CallIsa(isa_name);
  const CpuStrategy strategy = CallStrategy(strategy_name, isa);
  const bool is_signed = x.dtype().is(py::dtype::of<int8_t>());
  if (!is_signed && !x.dtype().is(py::dtype::of<uint8_t>())) throw InvalidArgument("x must be uint8 or int8");
  if (!values.dtype().is(py::dtype::of<int8_t>())) throw InvalidArgument("W_values must be int8");
  if (w_scale.ndim() > 1) throw InvalidArgument("w_scale must be a scalar or 1-D");
  const ConvAttributes attrs = ConvAttributes::Parse(DictAttributes(attributes));
  if (!attrs.epilogue.empty()) throw InvalidArgument("SparseQLinearConv takes no activation");
  CpuWeights weights(PackWeights(FloatArray::ensure(values), col_indices, row_ptr, attrs), attrs);
  const std::vector<float> w_scales(w_scale.data(), w_scale.data() + w_scale.size());
  QuantParams quant = QuantParams::Make(is_signed, x_scale, x_zero_point, w_scales, y_scale, y_zero_point,
                                        weights.out_channels());
  std::vector<int32_t> b;
  if (bias) {
    auto ints = py::array_t<int32_t, py::array::c_style>::ensure(*bias);
    if (!bias->dtype().is(py::dtype::of<int32_t>()) || !ints || ints.ndim() != 1) {
      throw InvalidArgument("B must be a 1-D int32 array");
    }
    b.assign(ints.data(), ints.data() + ints.size());
  }
  const QuantizedWeights qweights(std::move(weights), std::move(quant), std::move(b));
  const std::vector<int64_t> x_shape(x.shape(), x.shape() + x.ndim());
  const ConvGeometry g = PrepareCall(attrs, qweights.weights(), x_shape);
  const std::vector<int64_t> y_shape = g.OutputShape();
  py::array y(x.dtype(), std::vector<py::ssize_t>(y_shape.begin(), y_shape.end()));
  const py::array x_c = py::array::ensure(x, py::array::c_style);
  {
    py::gil_scoped_release release;
    std::vector<std::vector<float>> blocks;
    const ScratchAllocator scratch = [&](size_t n) {
      blocks.emplace_back(n);
      return blocks.back().data();
    };
    const QuantizedPlan plan = QuantizedPlan::Make(attrs, qweights, isa, strategy, x_shape);
    SparseQConvCpu(plan, qweights, g, x_c.data(), y.mutable_data(), ThreadedFor(std::max(1, threads)), scratch);
  }
  return y;
}

}  // namespace onnx_sparsify::python
