// onnx_sparsify._core: the kernels from Python (the CPU kernel on NumPy arrays, the CUDA kernel
// on device pointers: cpu_entry.cc, cuda_entry.cc) and the build's facts. A thin binding: all
// logic lives in ort_plugin/kernels.
#include "kernels/build_info.h"
#include "kernels/contract.h"
#include "kernels/conv_params.h"
#include "kernels/cpu_isa.h"
#include "kernels/cpu_weights.h"
#include "kernels/epilogue.h"
#include "python/binding.h"

namespace py = pybind11;
using namespace onnx_sparsify;
using namespace onnx_sparsify::python;

PYBIND11_MODULE(_core, m) {
  m.doc() = "onnx-sparsify native kernels (the same code the ONNX Runtime plugin runs)";
  py::register_exception<InvalidArgument>(m, "InvalidArgument", PyExc_ValueError);
  m.attr("DOMAIN") = kDomain;
  m.attr("OP_TYPE") = kOpType;
  m.attr("OP_VERSION") = kOpVersion;
  m.attr("Q_OP_TYPE") = kQOpType;
  // The epilogue's steps (epilogue.cc): name -> the defaults of its activation_params, one per parameter.
  py::dict activations;
  for (const EpilogueStepInfo& s : EpilogueSteps()) {
    activations[s.name] = py::tuple(py::cast(std::vector<double>(s.defaults, s.defaults + s.num_params)));
  }
  m.attr("ACTIVATIONS") = activations;
  m.attr("MAX_EPILOGUE_STEPS") = kMaxEpilogueSteps;
  // The bounds the plugin checks attributes against (conv_params.h): the rewriter leaves a Conv
  // beyond them dense rather than write a SparseConv the plugin refuses.
  m.attr("MAX_ATTRIBUTE_VALUE") = kMaxAttributeValue;
  m.attr("MAX_DILATED_EXTENT") = kMaxDilatedExtent;
  // The CPU kernel's layout facts the cost model reads (cpu_weights.h): the positions of one
  // tile (it counts a layer's last, partial tile) and when the plane path runs (no input copy).
  m.attr("CPU_TILE_POSITIONS") = kCpuTilePositions;
  m.def("cpu_plane_path", &UsesPlanePath, py::arg("unit_strides"), py::arg("nnz"), py::arg("out_channels"),
        py::arg("out_plane"),
        "Whether the CPU kernel runs a layer on its plane path (shifted plane updates, no input copy).");
  m.def("sparse_conv", &SparseConv, py::arg("x"), py::arg("values"), py::arg("col_indices"), py::arg("row_ptr"),
        py::arg("bias") = py::none(), py::kw_only(), py::arg("attributes") = py::dict(), py::arg("threads") = 1,
        py::arg("out") = py::none(), py::arg("isa") = py::none(), py::arg("strategy") = py::none(),
        py::arg("residual") = py::none(),
        "SparseConv on the CPU. `attributes` holds SparseConv's ONNX attributes by name (kernel_shape "
        "required). `residual` (Z, the output's shape) is added before the epilogue. Writes into `out` when "
        "given. `isa` (avx512vnni, avx512f, avx2, baseline) and `strategy` (generated, loops) force the "
        "instruction set and strategy, by default the plugin's choice (ONNX_SPARSIFY_CPU_ISA and "
        "ONNX_SPARSIFY_CPU_STRATEGY, else the best); generated code is made per call here, for layers of any "
        "size. Raises InvalidArgument (a ValueError) on bad input.");
  m.def("sparse_qlinear_conv", &SparseQLinearConv, py::arg("x"), py::arg("x_scale"), py::arg("x_zero_point"),
        py::arg("values"), py::arg("col_indices"), py::arg("row_ptr"), py::arg("w_scale"), py::arg("y_scale"),
        py::arg("y_zero_point"), py::arg("bias") = py::none(), py::kw_only(), py::arg("attributes") = py::dict(),
        py::arg("threads") = 1, py::arg("isa") = py::none(), py::arg("strategy") = py::none(),
        "SparseQLinearConv on the CPU: x uint8 or int8 (the output has its type), values int8 (the nonzeros of "
        "W minus its zero point), w_scale one or one per output channel, bias int32; `isa` and `strategy` force "
        "the kernel (avx512vnni: VNNI, generated code or loops; any other: the portable loops). Raises "
        "InvalidArgument.");
  m.def("cpu_plan_info", &PlanInfo, py::arg("x_shape"), py::arg("values"), py::arg("col_indices"),
        py::arg("row_ptr"), py::kw_only(), py::arg("attributes") = py::dict(), py::arg("any_size") = false,
        py::arg("isa") = py::none(), py::arg("strategy") = py::none(),
        "The CPU kernel's plan for this layer and input shape, as the plugin makes it at session creation "
        "(any_size: code for small layers too): {'isa', 'strategy', 'path', 'code_bytes', 'blocks', 'lanes', "
        "'walk'}; code_bytes 0 where no code is made.");
  m.def("cuda_available", &CudaAvailable, "Whether a CUDA device and driver are usable");
#ifdef ONNX_SPARSIFY_WITH_CUDA
  m.def("sparse_conv_cuda", &SparseConvCuda, py::arg("x_ptr"), py::arg("x_shape"), py::arg("y_ptr"),
        py::arg("values"), py::arg("col_indices"), py::arg("row_ptr"), py::arg("bias") = py::none(), py::kw_only(),
        py::arg("attributes") = py::dict(), py::arg("stream") = 0,
        "SparseConv's CUDA kernel on device pointers (x: float32 N x C x ..., y: the output shape); "
        "synchronizes the stream before returning.");
#endif
  m.def("build_info", [] {
    const BuildInfo info = GetBuildInfo();
    py::dict d;
    d["version"] = info.version;
    d["ort_api_version"] = info.ort_api_version;
    d["cuda_compiled"] = info.cuda_compiled;
    d["cpu_isa"] = info.cpu_isa;
    d["cpu_strategy"] = info.cpu_strategy;
    return d;
  });
  m.def("supported_cpu_isas", [] {
    std::vector<std::string> names;
    for (CpuIsa isa : kCpuIsasBestFirst) {
      if (CpuSupports(isa)) names.emplace_back(CpuIsaName(isa));
    }
    return names;
  }, "The CPU kernel's instruction sets this CPU runs, best first");
  m.def("supported_cpu_strategies", [](const std::string& isa_name) {
    const CpuIsa isa = CpuIsaNamed(isa_name, "isa='" + isa_name + "'");
    std::vector<std::string> names;
    for (CpuStrategy strategy : kCpuStrategiesBestFirst) {
      if (CpuSupports(isa, strategy)) names.emplace_back(CpuStrategyName(strategy));
    }
    return names;
  }, py::arg("isa"), "The strategies this machine runs with instruction set `isa`, best first");
  m.def("default_cpu_strategy", [](const std::string& isa_name) {
    return CpuStrategyName(BestCpuStrategy(CpuIsaNamed(isa_name, "isa='" + isa_name + "'")));
  }, py::arg("isa"), "The strategy the plugin runs with instruction set `isa` unless one is forced");
  m.attr("CPU_ISA_ENVIRONMENT_VARIABLE") = kCpuIsaEnvironmentVariable;
  m.attr("CPU_STRATEGY_ENVIRONMENT_VARIABLE") = kCpuStrategyEnvironmentVariable;
}
