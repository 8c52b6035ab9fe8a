// onnx_sparsify._core: the CPU kernel directly from NumPy (for tests and benchmarks) and the
// build's facts. A thin binding: all logic lives in ort_plugin/kernels.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "kernels/build_info.h"
#include "kernels/contract.h"
#include "kernels/cpu_isa.h"
#include "kernels/errors.h"
#include "kernels/sparse_conv_cpu.h"
#include "kernels/sparse_weights.h"
#ifdef ONNX_SPARSIFY_WITH_CUDA
#include <cuda_runtime_api.h>

#include "cuda/sparse_conv_cuda.h"
#endif

namespace py = pybind11;
using namespace onnx_sparsify;

namespace {

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

template <typename Index>
SparseWeights PackFrom(const FloatArray& values, const py::array& cols, const py::array& row_ptr,
                       const ConvAttributes& attrs) {
  auto c = py::array_t<Index, py::array::c_style>::ensure(cols);
  auto r = py::array_t<Index, py::array::c_style>::ensure(row_ptr);
  if (!c || !r) throw InvalidArgument("W_col_indices and W_row_ptr must be 1-D integer arrays");
  return SparseWeights::Pack(CsrView<Index>{values.data(), values.size(), c.data(), c.size(), r.data(), r.size()},
                             attrs, attrs.in_channels());
}

// The instruction set a call runs: `isa` when given, else as the plugin chooses (cpu_isa.h).
CpuIsa CallIsa(const std::optional<std::string>& isa) {
  return isa ? CpuIsaNamed(*isa, "isa='" + *isa + "'") : SelectedCpuIsa();
}

py::array_t<float> SparseConv(const FloatArray& x, const FloatArray& values, const py::array& col_indices,
                              const py::array& row_ptr, const std::optional<FloatArray>& bias, const py::dict& attributes,
                              int threads, std::optional<py::array> out, const std::optional<std::string>& isa_name,
                              const std::optional<FloatArray>& residual) {
  const CpuIsa isa = CallIsa(isa_name);
  const ConvAttributes attrs = ConvAttributes::Parse(DictAttributes(attributes));
  if (values.ndim() != 1 || col_indices.ndim() != 1 || row_ptr.ndim() != 1) {
    throw InvalidArgument("W_values, W_col_indices and W_row_ptr must be 1-D");
  }
  if (!col_indices.dtype().is(row_ptr.dtype())) {
    throw InvalidArgument("W_col_indices and W_row_ptr must have the same integer type (both int32 or both int64)");
  }
  SparseWeights weights;
  if (col_indices.dtype().is(py::dtype::of<int32_t>())) {
    weights = PackFrom<int32_t>(values, col_indices, row_ptr, attrs);
  } else if (col_indices.dtype().is(py::dtype::of<int64_t>())) {
    weights = PackFrom<int64_t>(values, col_indices, row_ptr, attrs);
  } else {
    throw InvalidArgument("W_col_indices and W_row_ptr must be int32 or int64");
  }
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
    SparseConvCpu(attrs, weights, b, z, g, x.data(), y_data, isa, ThreadedFor(std::max(1, threads)), scratch);
  }
  return y;
}

#ifdef ONNX_SPARSIFY_WITH_CUDA
void CheckCuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

bool CudaAvailable() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// Runs the CUDA kernel on device memory given as raw pointers (from PyTorch's data_ptr(),
// CuPy's .data.ptr or DLPack). For tests and benchmarks: the weight is packed and uploaded on
// every call, which the ORT plugin does once per node.
void SparseConvCuda(uintptr_t x_ptr, const std::vector<int64_t>& x_shape, uintptr_t y_ptr, const FloatArray& values,
                    const py::array& col_indices, const py::array& row_ptr, const std::optional<FloatArray>& bias,
                    const py::dict& attributes, uintptr_t stream) {
  const ConvAttributes attrs = ConvAttributes::Parse(DictAttributes(attributes));
  SparseWeights weights = col_indices.dtype().is(py::dtype::of<int64_t>())
                              ? PackFrom<int64_t>(values, col_indices, row_ptr, attrs)
                              : PackFrom<int32_t>(values, col_indices, row_ptr, attrs);
  const ConvGeometry g = PrepareCall(attrs, weights, x_shape);
  if (bias && (bias->ndim() != 1 || bias->shape(0) != weights.out_channels())) {
    throw InvalidArgument("B must have shape [" + std::to_string(weights.out_channels()) + "]");
  }
  std::vector<void*> owned;
  struct Free {
    std::vector<void*>& owned;
    ~Free() {
      for (void* p : owned) cudaFree(p);
    }
  } release{owned};
  auto upload = [&](const void* data, size_t bytes) -> void* {
    void* p = nullptr;
    CheckCuda(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
    owned.push_back(p);
    if (bytes) CheckCuda(cudaMemcpy(p, data, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
    return p;
  };
  // The same packing the ORT plugin does once per node (cuda::PlanCuda).
  const cuda::DevicePlan plan = cuda::UploadPlan(cuda::PlanCuda(attrs, weights), upload);
  const float* b = bias ? static_cast<const float*>(upload(bias->data(), bias->size() * sizeof(float))) : nullptr;
  const std::vector<float> slopes = attrs.ChannelSlopes(weights.out_channels());
  const float* sl = slopes.empty() ? nullptr : static_cast<const float*>(upload(slopes.data(), slopes.size() * sizeof(float)));
  auto s = reinterpret_cast<cudaStream_t>(stream);
  py::gil_scoped_release release_gil;
  CheckCuda(cuda::LaunchSparseConv(g, attrs.epilogue, plan, b, sl, nullptr, reinterpret_cast<const float*>(x_ptr),
                                   reinterpret_cast<float*>(y_ptr), s),
            "SparseConv launch");
  CheckCuda(cudaStreamSynchronize(s), "SparseConv");
}
#endif

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "onnx-sparsify native kernels (the same code the ONNX Runtime plugin runs)";
  py::register_exception<InvalidArgument>(m, "InvalidArgument", PyExc_ValueError);
  m.attr("DOMAIN") = kDomain;
  m.attr("OP_TYPE") = kOpType;
  m.attr("OP_VERSION") = kOpVersion;
  // Output positions one CPU tile computes: the cost model counts a layer's last, partial tile.
  m.attr("CPU_TILE_POSITIONS") = kCpuTilePositions;
  m.def("sparse_conv", &SparseConv, py::arg("x"), py::arg("values"), py::arg("col_indices"), py::arg("row_ptr"),
        py::arg("bias") = py::none(), py::kw_only(), py::arg("attributes") = py::dict(), py::arg("threads") = 1,
        py::arg("out") = py::none(), py::arg("isa") = py::none(), py::arg("residual") = py::none(),
        "SparseConv on the CPU. `attributes` holds SparseConv's ONNX attributes by name (kernel_shape "
        "required). `residual` (Z, the output's shape) is added before the epilogue. Writes into `out` when given. `isa` forces the instruction set (avx512f, avx2, baseline); "
        "by default the plugin's choice (ONNX_SPARSIFY_CPU_ISA, else the best). Raises InvalidArgument (a "
        "ValueError) on bad input.");
#ifdef ONNX_SPARSIFY_WITH_CUDA
  m.def("cuda_available", &CudaAvailable, "Whether a CUDA device and driver are usable");
  m.def("sparse_conv_cuda", &SparseConvCuda, py::arg("x_ptr"), py::arg("x_shape"), py::arg("y_ptr"),
        py::arg("values"), py::arg("col_indices"), py::arg("row_ptr"), py::arg("bias") = py::none(), py::kw_only(),
        py::arg("attributes") = py::dict(), py::arg("stream") = 0,
        "SparseConv's CUDA kernel on device pointers (x: float32 N x C x ..., y: the output shape); "
        "synchronizes the stream before returning.");
#else
  m.def("cuda_available", [] { return false; }, "Whether a CUDA device and driver are usable");
#endif
  m.def("build_info", [] {
    const BuildInfo info = GetBuildInfo();
    py::dict d;
    d["version"] = info.version;
    d["ort_api_version"] = info.ort_api_version;
    d["cuda_compiled"] = info.cuda_compiled;
    d["cpu_isa"] = info.cpu_isa;
    return d;
  });
  m.def("supported_cpu_isas", [] {
    std::vector<std::string> names;
    for (CpuIsa isa : {CpuIsa::kAvx512, CpuIsa::kAvx2, CpuIsa::kBaseline}) {
      if (CpuSupports(isa)) names.emplace_back(CpuIsaName(isa));
    }
    return names;
  }, "The CPU kernel's instruction sets this CPU runs, best first");
  m.attr("CPU_ISA_ENVIRONMENT_VARIABLE") = kCpuIsaEnvironmentVariable;
}
