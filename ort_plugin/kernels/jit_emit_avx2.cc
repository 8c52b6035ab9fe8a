// The AVX2 generator: ymm0-13 accumulate up to 14 output channels of 8 positions, ymm14 holds the
// input vector and ymm15 each weight in turn (VEX has no broadcast operand: one vbroadcastss per
// nonzero), then the tail's lane mask for the row's last vector (vmaskmovps).
#include "kernels/jit_emit.h"

namespace onnx_sparsify::jit {

void EmitBlockAvx2(Xbyak::CodeGenerator& c, const std::vector<Term>& terms, int channels, int64_t out_stride) {
  using namespace Xbyak;
  using namespace Xbyak::util;
  const Ymm input = ymm14, weight = ymm15;
  EmitRowsOfVectors(
      c, 32, [] {},
      [&] {
        for (int j = 0; j < channels; ++j) c.vbroadcastss(Ymm(j), ptr[kBias + j * 4]);
        // VEX's 8-bit displacement is in bytes: 32 values either side.
        ValueCursor cursor(c, kValues, 32);
        for (size_t i = 0; i < terms.size(); ++i) {
          if (i == 0 || terms[i].offset != terms[i - 1].offset) c.vmovups(input, ptr[kIn + terms[i].offset * 4]);
          c.vbroadcastss(weight, ptr[cursor.At(static_cast<int64_t>(i))]);
          c.vfmadd231ps(Ymm(terms[i].slot), input, weight);
        }
      },
      [&](bool last) {
        if (last) {
          c.mov(kValues, ptr[kArgs + kArgTailLanes]);  // free once the vector's terms are done
          c.vmovdqu(weight, ptr[kValues]);
        }
        for (int j = 0; j < channels; ++j) {
          const Address dst = ptr[kOut + j * out_stride * 4];
          if (last) {
            c.vmaskmovps(dst, weight, Ymm(j));
          } else {
            c.vmovups(dst, Ymm(j));
          }
        }
      });
}

}  // namespace onnx_sparsify::jit
