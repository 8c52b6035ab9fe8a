// The AVX2 generator: ymm0-13 accumulate up to 14 output channels of 8 positions, ymm14 holds the
// input vector and ymm15 each weight in turn (VEX has no broadcast operand: one vbroadcastss per
// nonzero), then the tail's lane mask for the row's last vector (vmaskmovps).
#include "kernels/jit_emit.h"

namespace onnx_sparsify::jit {

void EmitBlockAvx2(Xbyak::CodeGenerator& c, const std::vector<Term>& terms, int channels, int64_t out_stride) {
  using namespace Xbyak;
  using namespace Xbyak::util;
  constexpr int kVectorBytes = 32;
  const Reg64 args = rdi, in_row = r8, out_row = r9, bias = r10, rows_left = r11;
  const Reg64 in = rdx, out = rcx, vectors_left = rax, values = rsi;
  const Ymm input = ymm14, weight = ymm15;
  Label row_loop, vector_loop, last_vector, stored;

  c.mov(in_row, ptr[args + kArgIn]);
  c.mov(out_row, ptr[args + kArgOut]);
  c.mov(bias, ptr[args + kArgBias]);
  c.mov(rows_left, ptr[args + kArgRows]);
  c.L(row_loop);
  c.mov(in, in_row);
  c.mov(out, out_row);
  c.mov(vectors_left, ptr[args + kArgVectors]);
  c.align(16);
  c.L(vector_loop);
  c.mov(values, ptr[args + kArgValues]);
  for (int j = 0; j < channels; ++j) c.vbroadcastss(Ymm(j), ptr[bias + j * 4]);
  // VEX's 8-bit displacement is in bytes: 32 values either side.
  ValueCursor cursor(c, values, 32);
  for (size_t i = 0; i < terms.size(); ++i) {
    if (i == 0 || terms[i].offset != terms[i - 1].offset) c.vmovups(input, ptr[in + terms[i].offset * 4]);
    c.vbroadcastss(weight, ptr[cursor.At(static_cast<int64_t>(i))]);
    c.vfmadd231ps(Ymm(terms[i].slot), input, weight);
  }
  c.cmp(vectors_left, 1);
  c.je(last_vector, CodeGenerator::T_NEAR);
  for (int j = 0; j < channels; ++j) c.vmovups(ptr[out + j * out_stride * 4], Ymm(j));
  c.jmp(stored, CodeGenerator::T_NEAR);
  c.L(last_vector);
  c.mov(values, ptr[args + kArgTailLanes]);
  c.vmovdqu(weight, ptr[values]);
  for (int j = 0; j < channels; ++j) c.vmaskmovps(ptr[out + j * out_stride * 4], weight, Ymm(j));
  c.L(stored);
  c.add(in, kVectorBytes);
  c.add(out, kVectorBytes);
  c.dec(vectors_left);
  c.jnz(vector_loop, CodeGenerator::T_NEAR);
  c.add(in_row, ptr[args + kArgInRow]);
  c.add(out_row, ptr[args + kArgOutRow]);
  c.dec(rows_left);
  c.jnz(row_loop, CodeGenerator::T_NEAR);
  c.vzeroupper();
  c.ret();
}

}  // namespace onnx_sparsify::jit
