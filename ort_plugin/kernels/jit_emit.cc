#include "kernels/jit_emit.h"

namespace onnx_sparsify::jit {

void EmitRowsOfVectors(Xbyak::CodeGenerator& c, int vector_bytes, const std::function<void()>& prologue,
                       const std::function<void()>& accumulate, const std::function<void(bool last)>& store) {
  using Xbyak::CodeGenerator;
  using Xbyak::util::ptr;
  Xbyak::Label row_loop, vector_loop, last_vector, stored;
  c.mov(kInRow, ptr[kArgs + kArgIn]);
  c.mov(kOutRow, ptr[kArgs + kArgOut]);
  c.mov(kBias, ptr[kArgs + kArgBias]);
  c.mov(kRowsLeft, ptr[kArgs + kArgRows]);
  prologue();
  c.L(row_loop);
  c.mov(kIn, kInRow);
  c.mov(kOut, kOutRow);
  c.mov(kVectorsLeft, ptr[kArgs + kArgVectors]);
  c.align(16);
  c.L(vector_loop);
  c.mov(kValues, ptr[kArgs + kArgValues]);
  accumulate();
  c.cmp(kVectorsLeft, 1);
  c.je(last_vector, CodeGenerator::T_NEAR);
  store(false);
  c.jmp(stored, CodeGenerator::T_NEAR);
  c.L(last_vector);
  store(true);
  c.L(stored);
  c.add(kIn, vector_bytes);
  c.add(kOut, vector_bytes);
  c.dec(kVectorsLeft);
  c.jnz(vector_loop, CodeGenerator::T_NEAR);
  c.add(kInRow, ptr[kArgs + kArgInRow]);
  c.add(kOutRow, ptr[kArgs + kArgOutRow]);
  c.dec(kRowsLeft);
  c.jnz(row_loop, CodeGenerator::T_NEAR);
  c.vzeroupper();
  c.ret();
}

}  // namespace onnx_sparsify::jit
