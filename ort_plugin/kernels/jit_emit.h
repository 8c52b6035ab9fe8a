// The code generators behind JitTiles (jit_tiles.h), one per instruction set (jit_emit_*.cc), on
// the Xbyak assembler. Internal to the kernels: only jit_tiles.cc and the generators include it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include <xbyak/xbyak.h>

#include "kernels/jit_tiles.h"

namespace onnx_sparsify::jit {

// One nonzero of a block: the input element it reads and the accumulator (channel within the
// block) it adds into. A block's terms come sorted by offset, and the generated code reads the
// block's values in that order: term i's value is values[i].
struct Term {
  int64_t offset;
  int slot;
};

// Appends one block's function (JitArgs) to `c`, for `channels` accumulators writing channel j at
// out + j * out_stride.
using EmitBlockFn = void (*)(Xbyak::CodeGenerator& c, const std::vector<Term>& terms, int channels,
                             int64_t out_stride);

// An instruction set's generator: its vector width, the accumulators it has, its emitter.
struct Generator {
  int64_t lanes;
  int max_channels;
  EmitBlockFn emit;
  bool by_default;  // the default strategy where this instruction set is chosen
};

void EmitBlockAvx512(Xbyak::CodeGenerator& c, const std::vector<Term>& terms, int channels, int64_t out_stride);
// The same block with VNNI's int8 dot products (vpdpbusd) and int32 accumulators.
void EmitBlockVnni(Xbyak::CodeGenerator& c, const std::vector<Term>& terms, int channels, int64_t out_stride);
void EmitBlockAvx2(Xbyak::CodeGenerator& c, const std::vector<Term>& terms, int channels, int64_t out_stride);

// JitArgs field offsets, in bytes.
inline constexpr int kArgIn = offsetof(JitArgs, in), kArgValues = offsetof(JitArgs, values),
                     kArgOut = offsetof(JitArgs, out), kArgBias = offsetof(JitArgs, bias),
                     kArgRows = offsetof(JitArgs, rows), kArgVectors = offsetof(JitArgs, vectors),
                     kArgInRow = offsetof(JitArgs, in_row_bytes), kArgOutRow = offsetof(JitArgs, out_row_bytes),
                     kArgTailMask = offsetof(JitArgs, tail_mask), kArgTailLanes = offsetof(JitArgs, tail_lanes);

// Registers of every block's function, all caller-saved in the System V ABI: kArgs holds the
// JitArgs pointer throughout; kInRow / kOutRow this row's input and output, kIn / kOut this
// vector's, kBias the block's biases, kRowsLeft and kVectorsLeft the counters, kValues the
// block's values (advanced by ValueCursor).
inline const Xbyak::Reg64 kArgs = Xbyak::util::rdi, kInRow = Xbyak::util::r8, kOutRow = Xbyak::util::r9,
                          kBias = Xbyak::util::r10, kRowsLeft = Xbyak::util::r11, kIn = Xbyak::util::rdx,
                          kOut = Xbyak::util::rcx, kVectorsLeft = Xbyak::util::rax, kValues = Xbyak::util::rsi;

// The loop every generator's block shares (JitArgs): for each of `rows` rows, for each of
// `vectors` vectors of `vector_bytes`, `accumulate` (the bias and the terms into the
// accumulators), then `store` the accumulators (last: the row's last vector, under the tail).
// `prologue` runs once, after the row registers are loaded.
void EmitRowsOfVectors(Xbyak::CodeGenerator& c, int vector_bytes, const std::function<void()>& prologue,
                       const std::function<void()>& accumulate, const std::function<void(bool last)>& store);

// Walks a block's values through a register that advances, so that each value's displacement
// fits the instruction set's short (8-bit) form: `window` values either side of the register.
class ValueCursor {
 public:
  ValueCursor(Xbyak::CodeGenerator& c, const Xbyak::Reg64& reg, int64_t window) : c_(c), reg_(reg), window_(window) {}
  // The address of value i (non-decreasing i), advancing the register when i leaves the window.
  Xbyak::RegExp At(int64_t i) {
    if (i - base_ >= window_) {
      c_.add(reg_, static_cast<uint32_t>((i + window_ - base_) * 4));
      base_ = i + window_;
    }
    return reg_ + (i - base_) * 4;
  }

 private:
  Xbyak::CodeGenerator& c_;
  Xbyak::Reg64 reg_;
  int64_t window_, base_ = 0;
};

}  // namespace onnx_sparsify::jit
