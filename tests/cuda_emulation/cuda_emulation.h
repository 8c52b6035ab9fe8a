// CUDA emulation for the test suite: compiles `.cu` device code as host C++ and runs kernels on
// the CPU, so that CI executes the CUDA kernels' own source without a GPU. Test-only: it is never
// part of the shipped library.
//
// What it models, with CUDA's documented semantics:
//  - threadIdx, blockIdx, blockDim, gridDim (thread-local, set per emulated thread);
//  - blocks run one at a time; the threads of a block are cooperative fibers (ucontext), each
//    with its own stack, so per-thread locals are private and a __syncthreads() really suspends
//    a thread until every thread of its block has arrived;
//  - __syncthreads(): a block-wide barrier. All threads of the block must reach it: a block in
//    which some threads wait at a barrier while others have exited (undefined behaviour in
//    CUDA, a hang or silent corruption on a GPU) fails the launch with
//    cudaErrorLaunchFailure and a message;
//  - dynamic shared memory (ONNX_SPARSIFY_DYNAMIC_SHARED): one buffer per block, filled with
//    0xFF bytes (NaN as floats, -1 as integers) before each block so reads of unwritten shared
//    memory show up, and it ends at an inaccessible page, so a read past the launch's shared
//    bytes faults; static __shared__ arrays are refused at compile time;
//  - launch configuration limits: block <= 1024 threads (x, y <= 1024, z <= 64), grid x <
//    2^31, y and z <= 65535, dynamic shared memory <= 48 KB (the default without opt-in);
//    a violation makes cudaGetLastError() return cudaErrorInvalidConfiguration and runs nothing;
//  - the order in which fibers run between barriers is a parameter (forward, reverse, or a
//    seeded shuffle), so that a missing barrier changes the result between schedules.
// Not modelled (the kernels use none of them; adding one means adding it here with its CUDA
// semantics): warps as a unit (warp shuffles, votes, __syncwarp), atomics, streams (launches
// run synchronously), constant and texture memory, cooperative groups.
//
// What this proves: arithmetic, indexing, tiling, grid-stride and barrier logic. What it does
// not: speed, races that only real warp scheduling and memory ordering expose, memory
// coalescing, bank conflicts, register pressure, or that nvcc compiles the code the same way.
#pragma once
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static_assert(false, "use ONNX_SPARSIFY_DYNAMIC_SHARED: static __shared__ is not emulated");

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;
struct CUstream_st;
using cudaStream_t = CUstream_st*;

template <typename T>
inline T __ldg(const T* p) {
  return *p;
}

namespace cuda_emulation {

inline constexpr size_t kMaxDynamicShared = 48 * 1024;

// Memory whose last byte is followed by an inaccessible page: a read or write past the end
// faults at once (SIGSEGV) instead of reading a neighbour's bytes. The emulated "device" memory
// and each block's shared memory live in such buffers.
class GuardedBuffer {
 public:
  GuardedBuffer() = default;
  explicit GuardedBuffer(size_t bytes) : bytes_(bytes) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    mapped_ = ((bytes + page - 1) / page + 1) * page;
    base_ = static_cast<unsigned char*>(mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base_ == MAP_FAILED) throw std::bad_alloc();
    mprotect(base_ + mapped_ - page, page, PROT_NONE);
    data_ = base_ + mapped_ - page - bytes;
  }
  GuardedBuffer(GuardedBuffer&& o) noexcept { *this = std::move(o); }
  GuardedBuffer& operator=(GuardedBuffer&& o) noexcept {
    std::swap(base_, o.base_);
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    std::swap(mapped_, o.mapped_);
    return *this;
  }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;
  ~GuardedBuffer() {
    if (base_) munmap(base_, mapped_);
  }
  unsigned char* data() const { return data_; }
  size_t size() const { return bytes_; }

 private:
  unsigned char* base_ = nullptr;
  unsigned char* data_ = nullptr;
  size_t bytes_ = 0, mapped_ = 0;
};
enum Schedule { kForward = 0, kReverse = 1, kShuffled = 2 };

struct State {
  cudaError_t last_error = cudaSuccess;
  std::string last_message;
  Schedule schedule = kForward;
  uint64_t seed = 0;
  int64_t launches = 0;
  int64_t blocks_run = 0;
  int64_t barriers = 0;  // block-wide barrier releases
  GuardedBuffer shared;
};
inline thread_local State state;

inline void* DynamicShared() { return state.shared.data(); }

struct Fiber {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  uint3 index;
  enum { kReady, kAtBarrier, kDone } status = kReady;
};

struct Block {
  ucontext_t scheduler;
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
};
inline thread_local Block* active = nullptr;

inline constexpr size_t kStackBytes = 64 * 1024;

inline void FiberEntry() {
  (*active->body)();
  active->current->status = Fiber::kDone;
  // Returns into uc_link: the scheduler.
}

inline void SyncThreads() {
  if (!active || !active->current) throw std::logic_error("__syncthreads() outside a kernel");
  Fiber* self = active->current;
  self->status = Fiber::kAtBarrier;
  swapcontext(&self->context, &active->scheduler);
}

inline cudaError_t Fail(cudaError_t error, std::string message) {
  state.last_error = error;
  state.last_message = std::move(message);
  return error;
}

// Runs one block of `body`'s threads as fibers until all have returned. Between barriers,
// fibers run in the schedule's order; a barrier is released when every fiber waits at it.
inline bool RunBlock(Block& block, const dim3& threads) {
  const unsigned count = threads.x * threads.y * threads.z;
  block.fibers.resize(count);
  for (unsigned i = 0; i < count; ++i) {
    Fiber& f = block.fibers[i];
    if (!f.stack) f.stack.reset(new char[kStackBytes]);
    f.index = uint3{i % threads.x, (i / threads.x) % threads.y, i / (threads.x * threads.y)};
    f.status = Fiber::kReady;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack.get();
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &block.scheduler;
    makecontext(&f.context, FiberEntry, 0);
  }
  std::vector<unsigned> order(count);
  for (unsigned i = 0; i < count; ++i) order[i] = state.schedule == kReverse ? count - 1 - i : i;
  std::mt19937_64 rng(state.seed ^ (uint64_t{blockIdx.x} * 0x9E3779B97F4A7C15ull));
  for (;;) {
    if (state.schedule == kShuffled) std::shuffle(order.begin(), order.end(), rng);
    for (unsigned i : order) {
      Fiber& f = block.fibers[i];
      if (f.status != Fiber::kReady) continue;
      block.current = &f;
      threadIdx = f.index;
      swapcontext(&block.scheduler, &f.context);
    }
    block.current = nullptr;
    unsigned waiting = 0, done = 0;
    for (const Fiber& f : block.fibers) {
      waiting += f.status == Fiber::kAtBarrier;
      done += f.status == Fiber::kDone;
    }
    if (done == count) return true;
    if (done != 0) {
      Fail(cudaErrorLaunchFailure, "__syncthreads() in block (" + std::to_string(blockIdx.x) + "," +
                                       std::to_string(blockIdx.y) + "," + std::to_string(blockIdx.z) + "): " +
                                       std::to_string(waiting) + " threads wait at a barrier that " +
                                       std::to_string(done) + " exited threads never reach");
      return false;
    }
    ++state.barriers;
    for (Fiber& f : block.fibers) f.status = Fiber::kReady;
  }
}

inline bool CheckConfiguration(const dim3& grid, const dim3& threads, size_t shared) {
  const uint64_t per_block = uint64_t{threads.x} * threads.y * threads.z;
  std::string why;
  if (per_block == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0) why = "an empty grid or block";
  else if (per_block > 1024 || threads.x > 1024 || threads.y > 1024 || threads.z > 64) why = "block too large";
  else if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) why = "grid too large";
  else if (shared > kMaxDynamicShared) why = "dynamic shared memory above 48 KB";
  if (why.empty()) return true;
  Fail(cudaErrorInvalidConfiguration, "invalid launch configuration: " + why);
  return false;
}

// kernel<<<grid, threads, shared, stream>>>(args...): parameters are copied as CUDA copies
// them (by value, converted to the kernel's parameter types); runs synchronously.
template <typename... Params, typename... Args>
void Launch(void (*kernel)(Params...), dim3 grid, dim3 threads, size_t shared, cudaStream_t /*stream*/,
            Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel argument count");
  ++state.launches;
  if (!CheckConfiguration(grid, threads, shared)) return;
  std::tuple<std::decay_t<Params>...> copied(static_cast<Params>(args)...);
  const std::function<void()> body = [&] { std::apply(kernel, copied); };
  Block block;
  block.body = &body;
  Block* outer = active;
  active = &block;
  state.shared = GuardedBuffer(shared);  // exactly the launch's bytes: a read past them faults
  gridDim = grid;
  blockDim = threads;
  for (unsigned z = 0; z < grid.z; ++z) {
    for (unsigned y = 0; y < grid.y; ++y) {
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = uint3{x, y, z};
        std::memset(state.shared.data(), 0xFF, state.shared.size());  // NaN as floats, -1 as integers
        ++state.blocks_run;
        if (!RunBlock(block, threads)) {
          active = outer;
          return;
        }
      }
    }
  }
  active = outer;
}

}  // namespace cuda_emulation

inline void __syncthreads() { cuda_emulation::SyncThreads(); }

inline cudaError_t cudaGetLastError() {
  const cudaError_t e = cuda_emulation::state.last_error;
  cuda_emulation::state.last_error = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return cuda_emulation::state.last_error; }
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

#define ONNX_SPARSIFY_LAUNCH(kernel, grid, block, shared, stream, ...) \
  ::cuda_emulation::Launch(kernel, grid, block, shared, stream, __VA_ARGS__)
#define ONNX_SPARSIFY_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::cuda_emulation::DynamicShared())
