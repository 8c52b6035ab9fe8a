// Machine code specialised to one weight: the CPU kernel's AVX-512 tiles generated when a kernel
// is created, for the nonzero pattern and the input layout it will see (x86-64 Linux).
//
// Why: the intrinsic tile (sparse_conv_cpu.cc) keeps one output channel's 128 positions in
// registers and loads an input vector per nonzero, so a vector is reloaded by every output
// channel that uses it. Generated code can do the converse, which a compiled loop cannot (which
// register a nonzero adds into would have to be data): one accumulator per output channel of a
// block (up to kJitMaxChannels, one vector of 16 positions each), each input vector loaded once
// per block and multiplied into every channel that has a nonzero there, the weight broadcast
// from memory by the multiply-add itself, every offset an immediate displacement. The block
// writes its channels' output rows directly (bias included); Z and the epilogue follow in C++.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/sparse_weights.h"

namespace onnx_sparsify {

// Output channels per generated block: one accumulator each (zmm0-27); zmm31 holds the input.
inline constexpr int64_t kJitMaxChannels = 28;

// What one call of a block's code computes: `rows` output rows of `vectors` vectors of 16
// positions each, for every channel j of the block:
//   out[j * out_stride + r * out_row + 16 v + lane] = bias[j] + sum over channel j's nonzeros of
//                                                   value * in[r * in_row + 16 v + lane + offset]
// with the last vector of each row stored under `tail_mask` (in_row and out_row are element
// strides; JitArgs holds them in bytes). `in` is read up to the end of each row's last vector.
struct JitArgs {
  const float* in;
  const float* values;  // the block's (JitTiles::Block::values)
  float* out;
  const float* bias;  // the block's channels' biases (zeros for none)
  int64_t rows, vectors, in_row_bytes, out_row_bytes;
  uint32_t tail_mask;
};

class JitTiles {
 public:
  using Fn = void (*)(const JitArgs* args);

  struct Block {
    int64_t m_begin = 0, m_end = 0;  // output channels, inside one group
    Fn fn = nullptr;
    const float* values = nullptr;
  };

  // Code for every output channel of `weights`, in blocks of at most kJitMaxChannels channels
  // of one group, reading each nonzero at `offsets` (TapOffsets for one input layout) and
  // writing channel j of a block at out + j * out_stride. Null where no code can be generated:
  // not x86-64 Linux, no AVX-512, executable memory refused, a displacement beyond 32 bits, or
  // more than 2^24 nonzeros.
  // `in_stride` is the channel stride of the layout the offsets address (recorded, for callers
  // to check that a call's layout matches).
  static std::unique_ptr<JitTiles> Build(const SparseWeights& weights, const std::vector<int64_t>& offsets,
                                         int64_t in_stride, int64_t out_channels_per_group, int64_t out_stride);

  // Whether this machine runs generated code: AVX-512 and executable memory granted.
  static bool Available();

  JitTiles(const JitTiles&) = delete;
  JitTiles& operator=(const JitTiles&) = delete;
  ~JitTiles();

  // Blocks in channel order; every group has blocks_per_group() of them.
  int64_t blocks_per_group() const { return blocks_per_group_; }
  int64_t block_count() const { return static_cast<int64_t>(blocks_.size()); }
  const Block& block(int64_t i) const { return blocks_[static_cast<size_t>(i)]; }
  int64_t in_stride() const { return in_stride_; }
  int64_t out_stride() const { return out_stride_; }
  size_t code_bytes() const { return code_bytes_; }

 private:
  JitTiles() = default;

  std::vector<Block> blocks_;
  std::vector<float> values_;
  void* code_ = nullptr;
  size_t mapped_bytes_ = 0, code_bytes_ = 0;
  int64_t blocks_per_group_ = 0, in_stride_ = 0, out_stride_ = 0;
};

}  // namespace onnx_sparsify
