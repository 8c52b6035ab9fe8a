// Machine code specialised to one weight: the CPU kernel's tiles generated when a kernel is
// created, for the nonzero pattern and the input layout it will see (x86-64 Linux, through the
// Xbyak assembler; one generator per instruction set: jit_emit_*.cc).
//
// Why: the compiled tile (tiles_*.cc) keeps one output channel's positions in registers and loads
// an input vector per nonzero, so a vector is reloaded by every output channel that uses it.
// Generated code can do the converse, which a compiled loop cannot (which register a nonzero adds
// into would have to be data): one accumulator per output channel of a block (one vector of
// positions each), each input vector loaded once per block and multiplied into every channel that
// has a nonzero there, every offset an immediate displacement. The block writes its channels'
// output rows directly (bias included); Z and the epilogue follow in C++ (jit_walks.cc).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cpu_isa.h"
#include "kernels/sparse_weights.h"

namespace onnx_sparsify {

// The most output channels per generated block, over every generator (AVX-512: 28).
inline constexpr int64_t kJitMaxChannels = 28;

// What one call of a block's code computes: `rows` output rows of `vectors` vectors of
// JitTiles::lanes() positions each, for every channel j of the block:
//   out[j * out_stride + r * out_row + lanes v + lane] = bias[j] + sum over channel j's nonzeros of
//                                                      value * in[r * in_row + lanes v + lane + offset]
// with the last vector of each row stored only in its first `tail` lanes (in_row and out_row are
// element strides; JitArgs holds them in bytes). `in` is read up to the end of each row's last
// vector. MakeJitArgs fills in the tail's two encodings.
struct JitArgs {
  const float* in;
  const float* values;  // the block's (JitTiles::Block::values)
  float* out;
  const float* bias;  // the block's channels' biases (zeros for none)
  int64_t rows, vectors, in_row_bytes, out_row_bytes;
  uint32_t tail_mask;          // AVX-512: bit i set for lane i < tail
  const int32_t* tail_lanes;   // AVX2: lanes() values, -1 for lane i < tail, else 0
};

JitArgs MakeJitArgs(const float* in, const float* values, float* out, const float* bias, int64_t rows,
                    int64_t vectors, int64_t in_row, int64_t out_row, int64_t tail);

// The rows a generator turns into code: output channel m's terms [row_begin[m], row_begin[m + 1]),
// each an input element offset (4-byte elements) and a 32-bit value (a float weight, or a dword of
// 4 int8 weights for the int8 dot products).
struct JitRows {
  int64_t out_channels;
  const int64_t* row_begin;  // out_channels + 1 entries
  const int64_t* offsets;
  const uint32_t* values;
};

// What the generated code computes per term: a float multiply-add (the weight broadcast), or
// AVX-512 VNNI's dot product of 4 uint8 inputs with 4 int8 weights into an int32 (vpdpbusd).
enum class JitProduct { kFloat, kInt8Quads };

class JitTiles {
 public:
  using Fn = void (*)(const JitArgs* args);

  struct Block {
    int64_t m_begin = 0, m_end = 0;  // output channels, inside one group
    Fn fn = nullptr;
    const float* values = nullptr;
  };

  // Code in `isa`'s instructions for every output channel of `weights`, in blocks of at most
  // max_channels(isa) channels of one group, reading each nonzero at `offsets` (TapOffsets for one
  // input layout) and writing channel j of a block at out + j * out_stride. Null where no code can
  // be generated: Available(isa) false, a displacement beyond 32 bits, or more than 2^24 nonzeros.
  // `in_stride` is the channel stride of the layout the offsets address (recorded, for callers
  // to check that a call's layout matches).
  static std::unique_ptr<JitTiles> Build(CpuIsa isa, const SparseWeights& weights, const std::vector<int64_t>& offsets,
                                         int64_t in_stride, int64_t out_channels_per_group, int64_t out_stride);
  // The same from rows of any product (kInt8Quads: AVX-512 VNNI only; `bias` then holds int32 sums'
  // start values and `out` receives int32 sums).
  static std::unique_ptr<JitTiles> Build(CpuIsa isa, JitProduct product, const JitRows& rows, int64_t in_stride,
                                         int64_t out_channels_per_group, int64_t out_stride);

  // Whether this machine runs code generated for `isa`: a generator for it, the CPU supports it,
  // and executable memory is granted; if not, why, in a few words.
  static bool Available(CpuIsa isa, JitProduct product = JitProduct::kFloat);
  static std::string Unavailability(CpuIsa isa, JitProduct product = JitProduct::kFloat);
  // Whether generated code is the default strategy for `isa` (measured faster than its loops).
  static bool RunsByDefault(CpuIsa isa);

  JitTiles(const JitTiles&) = delete;
  JitTiles& operator=(const JitTiles&) = delete;
  ~JitTiles();

  // Blocks in channel order; every group has blocks_per_group() of them.
  int64_t blocks_per_group() const { return blocks_per_group_; }
  int64_t block_count() const { return static_cast<int64_t>(blocks_.size()); }
  const Block& block(int64_t i) const { return blocks_[static_cast<size_t>(i)]; }
  int64_t lanes() const { return lanes_; }  // floats per vector
  int64_t in_stride() const { return in_stride_; }
  int64_t out_stride() const { return out_stride_; }
  size_t code_bytes() const { return code_bytes_; }

 private:
  struct Code;  // the assembler holding the executable memory (jit_tiles.cc)
  JitTiles();

  std::vector<Block> blocks_;
  std::vector<float> values_;
  std::unique_ptr<Code> code_;
  size_t code_bytes_ = 0;
  int64_t blocks_per_group_ = 0, lanes_ = 0, in_stride_ = 0, out_stride_ = 0;
};

}  // namespace onnx_sparsify
