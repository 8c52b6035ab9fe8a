#include "kernels/qconv_vnni.h"

#include <algorithm>
#include <cstring>

#ifdef ONNX_SPARSIFY_X86
#include <immintrin.h>
// GCC 12's avx512fintrin.h passes _mm512_undefined_*() as the unused source of unmasked
// conversions, min and max, which -W(maybe-)uninitialized reports in every caller: a false
// positive.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace onnx_sparsify {

#ifdef ONNX_SPARSIFY_X86
namespace {

// Positions per chunk: 8 accumulators of kLanes (cpu_tiles.h) dwords; the generated code's sums
// buffer holds a channel's chunk every kCpuTilePositions (QuantizedPlan::Make).
constexpr int kChunk = static_cast<int>(kCpuTilePositions);
constexpr int kVectors = kChunk / kLanes;
static_assert(kVectors == 8, "Chunk<R> dispatches on 1 to 8 vectors");

#define ONNX_SPARSIFY_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))

// Sums of 16 positions requantized (quantization.h), the first `count` stored as bytes.
ONNX_SPARSIFY_TARGET inline void StoreRequantized(__m512i sums, float multiplier, const QuantParams& q, int count,
                                                  int8_t* out) {
  __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(sums), _mm512_set1_ps(multiplier));
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(static_cast<float>(q.y_min() - q.y_zero))),
                    _mm512_set1_ps(static_cast<float>(q.y_max() - q.y_zero)));
  // vcvtps2dq rounds as MXCSR says: to nearest even by default, as ORT relies on too.
  const __m512i out32 = _mm512_add_epi32(_mm512_cvtps_epi32(v), _mm512_set1_epi32(q.y_zero));
  const __mmask16 mask = count >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << count) - 1);
  _mm512_mask_cvtepi32_storeu_epi8(out, mask, out32);  // in range: truncation is exact
}

// Positions [0, valid) of a chunk: sums, requantized, stored as bytes.
template <int R>
ONNX_SPARSIFY_TARGET inline void Chunk(const uint8_t* in, const int64_t* offsets, const uint32_t* dwords,
                                       int64_t n, int32_t init, float multiplier, const QuantParams& q, int valid,
                                       int8_t* out) {
  __m512i acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_set1_epi32(init);
  for (int64_t j = 0; j < n; ++j) {
    const __m512i w = _mm512_set1_epi32(static_cast<int32_t>(dwords[j]));
    const uint8_t* p = in + offsets[j] * 4;
    for (int r = 0; r < R; ++r) acc[r] = _mm512_dpbusd_epi32(acc[r], _mm512_loadu_si512(p + r * 64), w);
  }
  for (int r = 0; r < R; ++r) StoreRequantized(acc[r], multiplier, q, valid - r * kLanes, out + r * kLanes);
}

// Copies virtual positions [p, p + count) of `src` into the output plane y, dropping those
// outside the output (rows of the phase extents are longer than the output's).
void Scatter(const ConvGeometry& g, const int8_t* src, int64_t p, int64_t count, int8_t* y) {
  const PhaseLayout& l = g.layout;
  const int64_t e12 = l.extent[1] * l.extent[2];
  int64_t o0 = p / e12, o1 = p % e12 / l.extent[2], o2 = p % l.extent[2];
  for (int64_t done = 0; done < count;) {
    const int64_t span = std::min(count - done, l.extent[2] - o2);  // to the end of this virtual row
    if (o1 < g.axes[1].out && o2 < g.axes[2].out) {
      std::memcpy(y + (o0 * g.axes[1].out + o1) * g.axes[2].out + o2, src + done,
                  static_cast<size_t>(std::min(span, g.axes[2].out - o2)));
    }
    done += span;
    o2 = 0;
    if (++o1 == l.extent[1]) {
      o1 = 0;
      ++o0;
    }
  }
}

}  // namespace

ONNX_SPARSIFY_TARGET void QuadRowsVnni(const ConvGeometry& g, const QuadTerms& terms, const QuantParams& q, int64_t m,
                                       int32_t init, const uint8_t* quads, void* y) {
  const PhaseLayout& l = g.layout;
  const int64_t begin = terms.row_begin[static_cast<size_t>(m)], end = terms.row_begin[static_cast<size_t>(m) + 1];
  const int64_t* offsets = terms.offsets.data() + begin;
  const uint32_t* dwords = terms.dwords.data() + begin;
  const float multiplier = q.multipliers[static_cast<size_t>(m)];
  int8_t* out = static_cast<int8_t*>(y);  // the bytes of uint8 or int8 outputs alike
  // The plane's virtual positions in chunks, every term broadcast once per chunk of up to kChunk
  // positions: rows of the phase extents run on into each other, and the positions between output
  // rows are computed and dropped (Scatter) unless the extents are the output's.
  const bool direct = l.extent[1] == g.axes[1].out && l.extent[2] == g.axes[2].out;
  const int64_t length = ((g.axes[0].out - 1) * l.extent[1] + (g.axes[1].out - 1)) * l.extent[2] + g.axes[2].out;
  alignas(64) int8_t chunk[kChunk];
  for (int64_t c = 0; c < length; c += kChunk) {
    const int valid = static_cast<int>(std::min<int64_t>(kChunk, length - c));
    const uint8_t* base = quads + c * 4;
    int8_t* dst = direct ? out + c : chunk;
    const int64_t n = end - begin;
    switch ((valid + kLanes - 1) / kLanes) {
      case 8: Chunk<8>(base, offsets, dwords, n, init, multiplier, q, valid, dst); break;
      case 7: Chunk<7>(base, offsets, dwords, n, init, multiplier, q, valid, dst); break;
      case 6: Chunk<6>(base, offsets, dwords, n, init, multiplier, q, valid, dst); break;
      case 5: Chunk<5>(base, offsets, dwords, n, init, multiplier, q, valid, dst); break;
      case 4: Chunk<4>(base, offsets, dwords, n, init, multiplier, q, valid, dst); break;
      case 3: Chunk<3>(base, offsets, dwords, n, init, multiplier, q, valid, dst); break;
      case 2: Chunk<2>(base, offsets, dwords, n, init, multiplier, q, valid, dst); break;
      default: Chunk<1>(base, offsets, dwords, n, init, multiplier, q, valid, dst); break;
    }
    if (!direct) Scatter(g, chunk, c, valid, out);
  }
}

ONNX_SPARSIFY_TARGET void QuadBlockVnni(const ConvGeometry& g, const JitTiles& code, const JitTiles::Block& block,
                                        const QuantParams& q, const int32_t* inits, const uint8_t* quads, void* y) {
  const PhaseLayout& l = g.layout;
  const bool direct = l.extent[1] == g.axes[1].out && l.extent[2] == g.axes[2].out;
  const int64_t length = ((g.axes[0].out - 1) * l.extent[1] + (g.axes[1].out - 1)) * l.extent[2] + g.axes[2].out;
  const int64_t channels = block.m_end - block.m_begin;
  alignas(64) int32_t sums[kJitMaxChannels * kChunk];
  alignas(64) int8_t chunk[kChunk];
  for (int64_t c = 0; c < length; c += kChunk) {
    const int valid = static_cast<int>(std::min<int64_t>(kChunk, length - c));
    const int64_t vectors = (valid + kLanes - 1) / kLanes;
    // The block's code reads dwords at 4-byte offsets, as a float block reads floats.
    const JitArgs args = MakeJitArgs(reinterpret_cast<const float*>(quads + c * 4), block.values,
                                     reinterpret_cast<float*>(sums), reinterpret_cast<const float*>(inits + block.m_begin),
                                     1, vectors, 0, 0, kLanes);
    block.fn(&args);
    for (int64_t j = 0; j < channels; ++j) {
      const int64_t m = block.m_begin + j;
      int8_t* plane = static_cast<int8_t*>(y) + m * g.out_plane;
      int8_t* dst = direct ? plane + c : chunk;
      const float multiplier = q.multipliers[static_cast<size_t>(m)];
      for (int v = 0; v < vectors; ++v) {
        StoreRequantized(_mm512_load_si512(sums + j * code.out_stride() + v * kLanes), multiplier, q,
                         valid - v * kLanes, dst + v * kLanes);
      }
      if (!direct) Scatter(g, chunk, c, valid, plane);
    }
  }
}
#else
void QuadRowsVnni(const ConvGeometry&, const QuadTerms&, const QuantParams&, int64_t, int32_t, const uint8_t*,
                  void*) {}
void QuadBlockVnni(const ConvGeometry&, const JitTiles&, const JitTiles::Block&, const QuantParams&, const int32_t*,
                   const uint8_t*, void*) {}
#endif

}  // namespace onnx_sparsify
