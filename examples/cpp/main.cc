// Runs a model rewritten by onnx-sparsify (SparseConv nodes) through ONNX Runtime's C++ API with
// the onnx-sparsify plugin registered, runs the dense model it came from with ORT's own Conv, and
// compares their outputs. No Python is involved: only libonnxruntime and the plugin library.
//
//   sparse_conv_example PLUGIN.so SPARSE.onnx DENSE.onnx [--threads N] [--batch N] [--tolerance T]
//
// Exit status: 0 when every output agrees within the tolerance (relative L2 error), 1 when one
// does not, 2 on a usage error, 3 when ONNX Runtime reports an error.

#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Args {
  std::string plugin, sparse_model, dense_model;
  int threads = 1;
  int64_t batch = 2;         // the size given to the first dimension when the model leaves it open
  double tolerance = 1e-4;   // a sound rewrite only reorders float32 additions
};

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s PLUGIN.so SPARSE.onnx DENSE.onnx [--threads N] [--batch N] [--tolerance T]\n",
               argv0);
  return 2;
}

Ort::Session make_session(Ort::Env& env, const std::string& model, const Args& args, bool with_plugin) {
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(args.threads);
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  if (with_plugin) {
    // Ort::SessionOptions::RegisterCustomOpsLibrary calls the C API's RegisterCustomOpsLibrary_V2:
    // ORT opens the library and keeps it loaded as long as the session lives.
    options.RegisterCustomOpsLibrary(args.plugin.c_str());
  }
  return Ort::Session(env, model.c_str(), options);
}

// Random float inputs of the shapes the model declares (an open dimension: the batch size for the
// first one, 1 for the others), the same for both models.
std::vector<Ort::Value> make_inputs(Ort::Session& session, const Args& args, std::vector<std::vector<float>>& storage) {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  std::vector<Ort::Value> inputs;
  storage.resize(session.GetInputCount());
  for (size_t i = 0; i < session.GetInputCount(); ++i) {
    Ort::TypeInfo type = session.GetInputTypeInfo(i);
    auto tensor = type.GetTensorTypeAndShapeInfo();
    if (tensor.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT) {
      throw std::runtime_error("this example feeds float32 inputs only");
    }
    std::vector<int64_t> shape = tensor.GetShape();
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] < 0) shape[d] = d == 0 ? args.batch : 1;
    }
    int64_t count = 1;
    for (int64_t s : shape) count *= s;
    storage[i].resize(static_cast<size_t>(count));
    for (float& v : storage[i]) v = normal(rng);
    inputs.push_back(Ort::Value::CreateTensor<float>(cpu, storage[i].data(), storage[i].size(), shape.data(),
                                                     shape.size()));
  }
  return inputs;
}

std::vector<std::string> names(Ort::Session& session, bool outputs) {
  Ort::AllocatorWithDefaultOptions allocator;
  std::vector<std::string> result;
  size_t n = outputs ? session.GetOutputCount() : session.GetInputCount();
  for (size_t i = 0; i < n; ++i) {
    result.push_back((outputs ? session.GetOutputNameAllocated(i, allocator)
                              : session.GetInputNameAllocated(i, allocator)).get());
  }
  return result;
}

std::vector<const char*> c_strs(const std::vector<std::string>& v) {
  std::vector<const char*> r;
  for (const auto& s : v) r.push_back(s.c_str());
  return r;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s;
}

int run(const Args& args) {
  Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "sparse_conv_example");
  std::printf("ONNX Runtime %s\n", Ort::GetVersionString().c_str());

  // Without the plugin ORT cannot load the rewritten model: SparseConv is the plugin's operator.
  try {
    make_session(env, args.sparse_model, args, /*with_plugin=*/false);
    std::printf("unexpected: %s loaded without the plugin (does it hold any SparseConv?)\n",
                args.sparse_model.c_str());
    return 1;
  } catch (const Ort::Exception&) {
    std::printf("without the plugin: %s is refused, as expected\n", args.sparse_model.c_str());
  }

  Ort::Session sparse = make_session(env, args.sparse_model, args, /*with_plugin=*/true);
  Ort::Session dense = make_session(env, args.dense_model, args, /*with_plugin=*/false);
  std::printf("plugin %s registered; sessions created\n", args.plugin.c_str());

  std::vector<std::vector<float>> storage;
  std::vector<Ort::Value> inputs = make_inputs(dense, args, storage);
  std::vector<std::string> in_names = names(dense, false), out_names = names(dense, true);
  if (names(sparse, false) != in_names || names(sparse, true) != out_names) {
    std::fprintf(stderr, "the two models' inputs or outputs differ\n");
    return 1;
  }
  auto in_c = c_strs(in_names), out_c = c_strs(out_names);

  auto timed_run = [&](Ort::Session& session, double& best_ms) {
    std::vector<Ort::Value> out;
    best_ms = 1e300;
    for (int r = 0; r < 10; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      out = session.Run(Ort::RunOptions{nullptr}, in_c.data(), inputs.data(), inputs.size(), out_c.data(),
                        out_c.size());
      auto t1 = std::chrono::steady_clock::now();
      best_ms = std::min(best_ms, std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    return out;
  };
  double sparse_ms = 0, dense_ms = 0;
  std::vector<Ort::Value> expected = timed_run(dense, dense_ms);
  std::vector<Ort::Value> actual = timed_run(sparse, sparse_ms);
  std::printf("best of 10 runs: dense (ORT Conv) %.3f ms, sparse (SparseConv) %.3f ms\n", dense_ms, sparse_ms);

  bool ok = true;
  for (size_t o = 0; o < out_names.size(); ++o) {
    auto e_info = expected[o].GetTensorTypeAndShapeInfo(), a_info = actual[o].GetTensorTypeAndShapeInfo();
    if (e_info.GetShape() != a_info.GetShape()) {
      std::printf("output '%s': shape %s, expected %s: MISMATCH\n", out_names[o].c_str(),
                  shape_str(a_info.GetShape()).c_str(), shape_str(e_info.GetShape()).c_str());
      ok = false;
      continue;
    }
    const float* e = expected[o].GetTensorData<float>();
    const float* a = actual[o].GetTensorData<float>();
    double diff2 = 0, ref2 = 0, max_abs = 0;
    for (size_t i = 0; i < e_info.GetElementCount(); ++i) {
      double d = static_cast<double>(a[i]) - e[i];
      diff2 += d * d;
      ref2 += static_cast<double>(e[i]) * e[i];
      max_abs = std::max(max_abs, std::fabs(d));
    }
    double rel = std::sqrt(diff2) / std::max(std::sqrt(ref2), 1e-30);
    bool agrees = rel <= args.tolerance;  // false for NaN too
    ok = ok && agrees;
    std::printf("output '%s' %s: relative L2 error %.2e, max |diff| %.2e (tolerance %.0e): %s\n",
                out_names[o].c_str(), shape_str(e_info.GetShape()).c_str(), rel, max_abs, args.tolerance,
                agrees ? "agree" : "MISMATCH");
  }
  std::printf("%s\n", ok ? "PASS: SparseConv and ORT's dense Conv agree" : "FAIL: outputs disagree");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--threads" || a == "--batch" || a == "--tolerance") && i + 1 < argc) {
      char* end = nullptr;
      const char* v = argv[++i];
      if (a == "--tolerance") {
        args.tolerance = std::strtod(v, &end);
      } else {
        long n = std::strtol(v, &end, 10);
        if (n < 1) return usage(argv[0]);
        if (a == "--threads") {
          args.threads = static_cast<int>(n);
        } else {
          args.batch = n;
        }
      }
      if (end == nullptr || *end != '\0') return usage(argv[0]);
    } else if (!a.empty() && a[0] == '-') {
      return usage(argv[0]);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 3) return usage(argv[0]);
  args.plugin = positional[0];
  args.sparse_model = positional[1];
  args.dense_model = positional[2];
  try {
    return run(args);
  } catch (const Ort::Exception& e) {
    std::fprintf(stderr, "ONNX Runtime error: %s\n", e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 3;
  }
}
