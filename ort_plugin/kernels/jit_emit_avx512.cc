// The AVX-512 generator: zmm0-27 accumulate up to 28 output channels of 16 positions, zmm31
// holds the input vector, each weight is broadcast from memory by the multiply-add itself
// ({1to16}), and the row's last vector is stored under k2.
#include "kernels/jit_emit.h"

namespace onnx_sparsify::jit {

void EmitBlockAvx512(Xbyak::CodeGenerator& c, const std::vector<Term>& terms, int channels, int64_t out_stride) {
  using namespace Xbyak;
  using namespace Xbyak::util;
  constexpr int kVectorBytes = 64;
  // All caller-saved in the System V ABI; rdi holds the JitArgs pointer throughout.
  const Reg64 args = rdi, in_row = r8, out_row = r9, bias = r10, rows_left = r11;
  const Reg64 in = rdx, out = rcx, vectors_left = rax, values = rsi;
  const Zmm input = zmm31;
  const Opmask tail = k2;
  Label row_loop, vector_loop, last_vector, stored;

  c.mov(in_row, ptr[args + kArgIn]);
  c.mov(out_row, ptr[args + kArgOut]);
  c.mov(bias, ptr[args + kArgBias]);
  c.mov(rows_left, ptr[args + kArgRows]);
  c.kmovw(tail, ptr[args + kArgTailMask]);
  c.L(row_loop);
  c.mov(in, in_row);
  c.mov(out, out_row);
  c.mov(vectors_left, ptr[args + kArgVectors]);
  c.align(16);
  c.L(vector_loop);
  c.mov(values, ptr[args + kArgValues]);
  for (int j = 0; j < channels; ++j) c.vbroadcastss(Zmm(j), ptr[bias + j * 4]);
  // EVEX scales an 8-bit displacement by the 4-byte element: 128 values either side.
  ValueCursor cursor(c, values, 128);
  for (size_t i = 0; i < terms.size(); ++i) {
    if (i == 0 || terms[i].offset != terms[i - 1].offset) c.vmovups(input, ptr[in + terms[i].offset * 4]);
    c.vfmadd231ps(Zmm(terms[i].slot), input, ptr_b[cursor.At(static_cast<int64_t>(i))]);
  }
  c.cmp(vectors_left, 1);
  c.je(last_vector, CodeGenerator::T_NEAR);
  for (int j = 0; j < channels; ++j) c.vmovups(ptr[out + j * out_stride * 4], Zmm(j));
  c.jmp(stored, CodeGenerator::T_NEAR);
  c.L(last_vector);
  for (int j = 0; j < channels; ++j) c.vmovups(ptr[out + j * out_stride * 4] | tail, Zmm(j));
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
