// SparseQLinearConv's AVX-512 VNNI rows (sparse_qconv_cpu.h): the input in quads of 4 channels,
// each position a dword of 4 uint8, so that vpdpbusd adds a quad's 4 products into each of 16
// positions at once; then the int32 sums requantized in vectors (quantization.h's arithmetic).
#pragma once
#include <cstdint>

#include "kernels/conv_params.h"
#include "kernels/jit_tiles.h"
#include "kernels/sparse_qconv_cpu.h"

namespace onnx_sparsify {

// Output channel m's plane of one image into y (uint8 when !is_signed, else int8), from `quads`
// (the channel's group, QuadTerms' layout; read up to 64 bytes past the plane's last position),
// every sum starting from `init` (the bias minus the zero point's share, sparse_qconv_cpu.cc).
void QuadRowsVnni(const ConvGeometry& g, const QuadTerms& terms, const QuantParams& q, int64_t m, int32_t init,
                  const uint8_t* quads, void* y);

// The same with generated code (QuantizedPlan's, JitProduct::kInt8Quads): block `block` of `code`
// computes the int32 sums of its channels for a chunk of positions, reading each input vector
// once for all of them; then each channel is requantized. `inits` holds every channel's start
// value; `y` is the image's output (all channels).
void QuadBlockVnni(const ConvGeometry& g, const JitTiles& code, const JitTiles::Block& block, const QuantParams& q,
                   const int32_t* inits, const uint8_t* quads, void* y);

}  // namespace onnx_sparsify
