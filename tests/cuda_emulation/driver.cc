// The test suite's entry into the CUDA path under emulation (cuda_emulation.h), loaded with
// ctypes by tests/cuda_emulation/emulated.py. Setup is the plugin's own code
// (ConvAttributes::Parse, SparseWeights::Pack, PrepareCall, cuda::PlanCuda, cuda::UploadPlan);
// then the real launcher, cuda::LaunchSparseConv, runs up to its <<<>>>, where the emulation
// takes over and runs the kernels on host memory.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/sparse_conv_cuda.h"
#include "kernels/errors.h"
#include "kernels/sparse_weights.h"

using namespace onnx_sparsify;

namespace {

// Attributes as text: "name=kind:value;..." with kind int, ints, floats or str.
class TextAttributes final : public AttributeSource {
 public:
  explicit TextAttributes(const std::string& text) {
    std::stringstream entries(text);
    std::string entry;
    while (std::getline(entries, entry, ';')) {
      if (entry.empty()) continue;
      const size_t eq = entry.find('='), colon = entry.find(':', eq);
      if (eq == std::string::npos || colon == std::string::npos) throw InvalidArgument("bad attribute text: " + entry);
      entries_[entry.substr(0, eq)] = {entry.substr(eq + 1, colon - eq - 1), entry.substr(colon + 1)};
    }
  }
  std::optional<int64_t> Int(const char* name) const override {
    const auto* e = Find(name, "int");
    if (!e) return std::nullopt;
    return std::stoll(e->second);
  }
  std::optional<std::vector<int64_t>> Ints(const char* name) const override {
    const auto* e = Find(name, "ints");
    if (!e) return std::nullopt;
    std::vector<int64_t> out;
    for (const std::string& v : Split(e->second)) out.push_back(std::stoll(v));
    return out;
  }
  std::optional<std::vector<float>> Floats(const char* name) const override {
    const auto* e = Find(name, "floats");
    if (!e) return std::nullopt;
    std::vector<float> out;
    for (const std::string& v : Split(e->second)) out.push_back(std::stof(v));
    return out;
  }
  std::optional<std::string> String(const char* name) const override {
    const auto* e = Find(name, "str");
    if (!e) return std::nullopt;
    return e->second;
  }

 private:
  using Entry = std::pair<std::string, std::string>;
  const Entry* Find(const char* name, const char* kind) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) return nullptr;
    if (it->second.first != kind) throw InvalidArgument(std::string("attribute '") + name + "' has the wrong type");
    return &it->second;
  }
  static std::vector<std::string> Split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    std::string v;
    while (std::getline(in, v, ',')) {
      if (!v.empty()) out.push_back(v);
    }
    return out;
  }
  std::map<std::string, Entry> entries_;
};

struct Setup {
  ConvAttributes attrs;
  SparseWeights weights;
  ConvGeometry geometry;
  cuda::CudaPlan plan;
  std::vector<cuda_emulation::GuardedBuffer> memory;  // the "device" arrays, each ending at a guard page
  cuda::DevicePlan device;
};

void Prepare(Setup& s, const char* attributes, const float* values, const int64_t* cols, const int64_t* row_ptr,
             int64_t nnz, int64_t rows, const int64_t* x_shape, int x_rank, int force_direct) {
  s.attrs = ConvAttributes::Parse(TextAttributes(attributes));
  const int64_t in_channels = s.attrs.in_channels_per_group > 0 ? s.attrs.in_channels_per_group * s.attrs.group : -1;
  s.weights = SparseWeights::Pack(CsrView<int64_t>{values, nnz, cols, nnz, row_ptr, rows + 1}, s.attrs, in_channels);
  s.geometry = PrepareCall(s.attrs, s.weights, std::vector<int64_t>(x_shape, x_shape + x_rank));
  s.plan = cuda::PlanCuda(s.attrs, s.weights, !force_direct);
  s.device = cuda::UploadPlan(s.plan, [&](const void* data, size_t bytes) -> void* {
    s.memory.emplace_back(bytes);
    std::memcpy(s.memory.back().data(), data, bytes);
    return s.memory.back().data();
  });
}

int Report(const std::exception& e, char* error, int error_len) {
  std::snprintf(error, static_cast<size_t>(error_len), "%s", e.what());
  return 2;
}

}  // namespace

extern "C" {

// Runs SparseConv through cuda::LaunchSparseConv under the emulation. y (and residual, Z, when
// not null) must hold y_size floats (the output's size). stats receives [tiled, grid blocks, work items, blocks run,
// barriers released, launches, chunk_channels, chunks]. Returns 0, 1 for a CUDA error (message
// in `error`), 2 for an invalid argument.
int ose_sparse_conv(const char* attributes, const float* values, const int64_t* cols, const int64_t* row_ptr,
                    int64_t nnz, int64_t rows, const float* bias, const float* residual, const int64_t* x_shape,
                    int x_rank, const float* x,
                    float* y, int64_t y_size, int64_t max_blocks, int schedule, uint64_t seed, int force_direct,
                    int64_t* stats, char* error, int error_len) {
  try {
    Setup s;
    Prepare(s, attributes, values, cols, row_ptr, nnz, rows, x_shape, x_rank, force_direct);
    if (s.geometry.out_elements != y_size) {
      throw InvalidArgument("y has " + std::to_string(y_size) + " elements, the output " +
                            std::to_string(s.geometry.out_elements));
    }
    auto& state = cuda_emulation::state;
    state = cuda_emulation::State{};
    state.schedule = static_cast<cuda_emulation::Schedule>(schedule);
    state.seed = seed;
    // X, Y and B in guarded "device" memory too, as the kernels see them.
    auto device_copy = [&](const void* data, size_t bytes) {
      cuda_emulation::GuardedBuffer b(bytes);
      if (data) std::memcpy(b.data(), data, bytes);
      return b;
    };
    const size_t x_bytes = static_cast<size_t>(s.geometry.batch * s.geometry.in_image) * sizeof(float);
    const size_t y_bytes = static_cast<size_t>(y_size) * sizeof(float);
    cuda_emulation::GuardedBuffer dx = device_copy(x, x_bytes), dy = device_copy(y, y_bytes);
    cuda_emulation::GuardedBuffer db, dz;
    if (bias) db = device_copy(bias, static_cast<size_t>(rows) * sizeof(float));
    if (residual) dz = device_copy(residual, y_bytes);
    const std::vector<float> slopes = s.attrs.ChannelSlopes(rows);
    cuda_emulation::GuardedBuffer ds;
    if (!slopes.empty()) ds = device_copy(slopes.data(), slopes.size() * sizeof(float));
    const cuda::LaunchShape shape = cuda::ShapeLaunch(s.geometry, s.device, max_blocks);
    const cudaError_t status = cuda::LaunchSparseConv(
        s.geometry, s.attrs.epilogue, s.device, bias ? reinterpret_cast<const float*>(db.data()) : nullptr,
        slopes.empty() ? nullptr : reinterpret_cast<const float*>(ds.data()),
        residual ? reinterpret_cast<const float*>(dz.data()) : nullptr, reinterpret_cast<const float*>(dx.data()),
        reinterpret_cast<float*>(dy.data()), nullptr, max_blocks);
    std::memcpy(y, dy.data(), y_bytes);
    const int64_t out[] = {shape.tiled, shape.blocks, shape.items, state.blocks_run, state.barriers,
                           state.launches, s.plan.tile.chunk_channels, s.plan.tile.chunks};
    std::memcpy(stats, out, sizeof(out));
    if (status != cudaSuccess) {
      std::snprintf(error, static_cast<size_t>(error_len), "%s: %s", cudaGetErrorString(status),
                    state.last_message.c_str());
      return 1;
    }
    return 0;
  } catch (const std::exception& e) {
    return Report(e, error, error_len);
  }
}

// The launch the launcher would make for this input shape, without running it (no memory is
// touched, so shapes far beyond this machine's memory can be asked about): out = [tiled,
// blocks, items, configuration valid under CUDA's limits].
int ose_launch_shape(const char* attributes, const float* values, const int64_t* cols, const int64_t* row_ptr,
                     int64_t nnz, int64_t rows, const int64_t* x_shape, int x_rank, int force_direct, int64_t* out,
                     char* error, int error_len) {
  try {
    Setup s;
    Prepare(s, attributes, values, cols, row_ptr, nnz, rows, x_shape, x_rank, force_direct);
    const cuda::LaunchShape shape = cuda::ShapeLaunch(s.geometry, s.device);
    const size_t shared = s.plan.tiled ? cuda::TiledSharedBytes(s.plan.tile) : 0;
    const bool valid = shape.blocks == 0 ||
                       cuda_emulation::CheckConfiguration(dim3(static_cast<unsigned>(shape.blocks)),
                                                          dim3(shape.tiled ? cuda::kThreadsPerBlock : 256), shared);
    out[0] = shape.tiled;
    out[1] = shape.blocks;
    out[2] = shape.items;
    out[3] = valid;
    return 0;
  } catch (const std::exception& e) {
    return Report(e, error, error_len);
  }
}

}  // extern "C"

// The emulation's own checks, on small kernels written for them.
namespace {

// Each block reverses its threads' indices through shared memory: right only with the barrier.
__global__ void ReverseThroughShared(float* out, int with_barrier) {
  ONNX_SPARSIFY_DYNAMIC_SHARED(float, s);
  const unsigned t = threadIdx.x;
  s[t] = static_cast<float>(blockIdx.x * blockDim.x + t);
  if (with_barrier) __syncthreads();
  out[blockIdx.x * blockDim.x + t] = s[blockDim.x - 1 - t];
}

// Some threads return before a barrier the others wait at (undefined behaviour in CUDA).
__global__ void DivergentBarrier(float* out) {
  if (threadIdx.x % 7 == 3) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

}  // namespace

extern "C" {

// which: 0 reverse with the barrier, 1 without, 2 a divergent barrier, 3 a block of 2048
// threads. out holds blocks * threads floats. Returns the launch's cudaError_t.
int ose_self_test(int which, int schedule, int blocks, int threads, float* out, char* error, int error_len) {
  cuda_emulation::state = cuda_emulation::State{};
  cuda_emulation::state.schedule = static_cast<cuda_emulation::Schedule>(schedule);
  const size_t shared = size_t(threads) * sizeof(float);
  switch (which) {
    case 0:
    case 1:
      ONNX_SPARSIFY_LAUNCH(ReverseThroughShared, dim3(blocks), dim3(threads), shared, nullptr, out, which == 0);
      break;
    case 2: ONNX_SPARSIFY_LAUNCH(DivergentBarrier, dim3(blocks), dim3(threads), 0, nullptr, out); break;
    default: ONNX_SPARSIFY_LAUNCH(DivergentBarrier, dim3(blocks), dim3(2048), 0, nullptr, out); break;
  }
  std::snprintf(error, static_cast<size_t>(error_len), "%s", cuda_emulation::state.last_message.c_str());
  return cudaGetLastError();
}

}  // extern "C"
