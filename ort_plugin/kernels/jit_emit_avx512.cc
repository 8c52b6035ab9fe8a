// The AVX-512 generators: zmm0-27 accumulate up to 28 output channels of 16 positions, zmm31
// holds the input vector, each weight is broadcast from memory by the product itself ({1to16}),
// and the row's last vector is stored under k2. The float block multiplies and adds
// (vfmadd231ps); the VNNI block adds 4 products of uint8 inputs and int8 weights into each int32
// lane (vpdpbusd), its start values and sums the bits of int32s.
#include "kernels/jit_emit.h"

namespace onnx_sparsify::jit {

namespace {

void EmitEvexBlock(Xbyak::CodeGenerator& c, const std::vector<Term>& terms, int channels, int64_t out_stride,
                   bool dot_product) {
  using namespace Xbyak;
  using namespace Xbyak::util;
  const Zmm input = zmm31;
  const Opmask tail = k2;
  EmitRowsOfVectors(
      c, 64, [&] { c.kmovw(tail, ptr[kArgs + kArgTailMask]); },
      [&] {
        for (int j = 0; j < channels; ++j) c.vbroadcastss(Zmm(j), ptr[kBias + j * 4]);
        // EVEX scales an 8-bit displacement by the 4-byte element: 128 values either side.
        ValueCursor cursor(c, kValues, 128);
        for (size_t i = 0; i < terms.size(); ++i) {
          if (i == 0 || terms[i].offset != terms[i - 1].offset) c.vmovups(input, ptr[kIn + terms[i].offset * 4]);
          const Address weight = ptr_b[cursor.At(static_cast<int64_t>(i))];
          if (dot_product) {
            c.vpdpbusd(Zmm(terms[i].slot), input, weight);
          } else {
            c.vfmadd231ps(Zmm(terms[i].slot), input, weight);
          }
        }
      },
      [&](bool last) {
        for (int j = 0; j < channels; ++j) {
          const Address dst = ptr[kOut + j * out_stride * 4];
          if (last) {
            c.vmovups(dst | tail, Zmm(j));
          } else {
            c.vmovups(dst, Zmm(j));
          }
        }
      });
}

}  // namespace

void EmitBlockAvx512(Xbyak::CodeGenerator& c, const std::vector<Term>& terms, int channels, int64_t out_stride) {
  EmitEvexBlock(c, terms, channels, out_stride, false);
}

void EmitBlockVnni(Xbyak::CodeGenerator& c, const std::vector<Term>& terms, int channels, int64_t out_stride) {
  EmitEvexBlock(c, terms, channels, out_stride, true);
}

}  // namespace onnx_sparsify::jit
