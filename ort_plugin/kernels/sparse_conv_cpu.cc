// SparseConv on the CPU.
//
// Layout: each call copies X once into a zero-padded, phase-decomposed buffer (one phase per
// stride residue on each axis), unless X is already usable as is (no padding, unit strides).
// In that buffer every output position of a channel is a "virtual position"
// p = (o0 * Q1 + o1) * Q2 + o2 (Q = phase extents), and every nonzero (c, k) reads element
// p + offset(c, k): a contiguous, unit-stride load for any stride, dilation and padding. The
// virtual row of a channel includes a few positions that fall outside the output (o1 >= O1 or
// o2 >= O2); they are computed and dropped.
//
// Kernel: for one output channel and a tile of 16*R consecutive virtual positions, R vector
// accumulators stay in registers while the channel's nonzeros stream by; each nonzero costs one
// broadcast and R fused multiply-adds with unaligned loads. Tiles run over blocks of positions
// and blocks of channels, so a block's input window stays in cache across channels.
#include "sparse_conv_cpu.h"

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ONNX_SPARSIFY_X86 1
#endif

namespace onnx_sparsify {
namespace {

constexpr int kLanes = 16;                 // floats per AVX-512 vector
constexpr int kMaxVectors = 8;             // accumulators per tile
constexpr int kTile = kLanes * kMaxVectors;  // virtual positions per tile
constexpr int64_t kBlockTiles = 1;         // tiles per task along the positions

// The phase-decomposed input of one call.
struct PhaseLayout {
  std::array<int64_t, kMaxSpatialRank> q{1, 1, 1};  // phase extent per axis
  int64_t phases = 1;                                // prod(strides)
  int64_t phase_plane = 1;                           // prod(q)
  int64_t channel_stride = 1;                        // phases * phase_plane
  bool copy = false;                                 // false: X itself is the buffer
};

PhaseLayout MakeLayout(const ConvGeometry& g) {
  PhaseLayout l;
  bool unit = true;
  for (int a = 0; a < kMaxSpatialRank; ++a) {
    const AxisGeometry& ax = g.axes[a];
    l.q[a] = (ax.padded() + ax.stride - 1) / ax.stride;
    l.phases *= ax.stride;
    l.phase_plane *= l.q[a];
    unit = unit && ax.stride == 1;
  }
  l.channel_stride = l.phases * l.phase_plane;
  l.copy = g.has_padding || !unit;
  return l;
}

// Fills the phase buffer for one (n, c) plane.
void FillPlane(const ConvGeometry& g, const PhaseLayout& l, const float* x, float* dst) {
  const AxisGeometry &a0 = g.axes[0], &a1 = g.axes[1], &a2 = g.axes[2];
  int64_t phase = 0;
  for (int64_t r0 = 0; r0 < a0.stride; ++r0) {
    for (int64_t r1 = 0; r1 < a1.stride; ++r1) {
      for (int64_t r2 = 0; r2 < a2.stride; ++r2, ++phase) {
        float* out = dst + phase * l.phase_plane;
        for (int64_t t0 = 0; t0 < l.q[0]; ++t0) {
          const int64_t i0 = r0 + t0 * a0.stride - a0.pad_begin;
          for (int64_t t1 = 0; t1 < l.q[1]; ++t1, out += l.q[2]) {
            const int64_t i1 = r1 + t1 * a1.stride - a1.pad_begin;
            if (i0 < 0 || i0 >= a0.in || i1 < 0 || i1 >= a1.in) {
              std::fill(out, out + l.q[2], 0.0f);
              continue;
            }
            const float* row = x + (i0 * a1.in + i1) * a2.in;
            for (int64_t t2 = 0; t2 < l.q[2]; ++t2) {
              const int64_t i2 = r2 + t2 * a2.stride - a2.pad_begin;
              out[t2] = (i2 >= 0 && i2 < a2.in) ? row[i2] : 0.0f;
            }
          }
        }
      }
    }
  }
}

// acc[0, valid) = sum_j values[j] * in[offsets[j] + t]; lanes at or past `valid` are not read.
using TileFn = void (*)(const float* in, const int64_t* offsets, const float* values, int64_t nnz, int valid,
                        float* acc);

#ifdef ONNX_SPARSIFY_X86
// R accumulators as named variables: GCC keeps an array of vectors in memory here, storing it
// on every iteration.
#define ONNX_SPARSIFY_STEP(i)                                                                    \
  if constexpr (R > i) {                                                                       \
    const __m512 v = (i == R - 1) ? _mm512_maskz_loadu_ps(last, p + i * kLanes)                 \
                                  : _mm512_loadu_ps(p + i * kLanes);                             \
    a##i = _mm512_fmadd_ps(w, v, a##i);                                                          \
  }
#define ONNX_SPARSIFY_STORE(i) \
  if constexpr (R > i) _mm512_storeu_ps(out + i * kLanes, a##i);

template <int R>
__attribute__((target("avx512f"))) inline void TileAvx512Fixed(const float* in, const int64_t* offsets,
                                                                 const float* values, int64_t nnz, int valid,
                                                                 float* out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  const int tail = valid - (R - 1) * kLanes;  // lanes used in the last vector, 1..16
  const __mmask16 last = tail >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << tail) - 1);
  for (int64_t j = 0; j < nnz; ++j) {
    const __m512 w = _mm512_set1_ps(values[j]);
    const float* p = in + offsets[j];
    ONNX_SPARSIFY_STEP(0) ONNX_SPARSIFY_STEP(1) ONNX_SPARSIFY_STEP(2) ONNX_SPARSIFY_STEP(3)
    ONNX_SPARSIFY_STEP(4) ONNX_SPARSIFY_STEP(5) ONNX_SPARSIFY_STEP(6) ONNX_SPARSIFY_STEP(7)
  }
  ONNX_SPARSIFY_STORE(0) ONNX_SPARSIFY_STORE(1) ONNX_SPARSIFY_STORE(2) ONNX_SPARSIFY_STORE(3)
  ONNX_SPARSIFY_STORE(4) ONNX_SPARSIFY_STORE(5) ONNX_SPARSIFY_STORE(6) ONNX_SPARSIFY_STORE(7)
}
#undef ONNX_SPARSIFY_STEP
#undef ONNX_SPARSIFY_STORE

__attribute__((target("avx512f"))) void TileAvx512(const float* in, const int64_t* offsets, const float* values,
                                                     int64_t nnz, int valid, float* acc) {
  switch ((valid + kLanes - 1) / kLanes) {
    case 8: return TileAvx512Fixed<8>(in, offsets, values, nnz, valid, acc);
    case 7: return TileAvx512Fixed<7>(in, offsets, values, nnz, valid, acc);
    case 6: return TileAvx512Fixed<6>(in, offsets, values, nnz, valid, acc);
    case 5: return TileAvx512Fixed<5>(in, offsets, values, nnz, valid, acc);
    case 4: return TileAvx512Fixed<4>(in, offsets, values, nnz, valid, acc);
    case 3: return TileAvx512Fixed<3>(in, offsets, values, nnz, valid, acc);
    case 2: return TileAvx512Fixed<2>(in, offsets, values, nnz, valid, acc);
    default: return TileAvx512Fixed<1>(in, offsets, values, nnz, valid, acc);
  }
}
#define ONNX_SPARSIFY_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define ONNX_SPARSIFY_MULTIVERSION
#endif

// Portable tile (auto-vectorized; AVX2 and baseline clones on x86).
ONNX_SPARSIFY_MULTIVERSION
void TileGeneric(const float* in, const int64_t* offsets, const float* values, int64_t nnz, int valid, float* out) {
  if (valid == kTile) {
    float acc[kTile] = {};
    for (int64_t j = 0; j < nnz; ++j) {
      const float v = values[j];
      const float* p = in + offsets[j];
      for (int t = 0; t < kTile; ++t) acc[t] += v * p[t];
    }
    std::memcpy(out, acc, sizeof(acc));
    return;
  }
  std::fill(out, out + valid, 0.0f);
  for (int64_t j = 0; j < nnz; ++j) {
    const float v = values[j];
    const float* p = in + offsets[j];
    for (int t = 0; t < valid; ++t) out[t] += v * p[t];
  }
}

TileFn SelectTile() {
#ifdef ONNX_SPARSIFY_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return TileAvx512;
#endif
  return TileGeneric;
}

// Writes acc (virtual positions [p, p + count)) to the output plane: drops positions outside
// the output, adds the bias and applies the epilogue.
void StoreTile(const ConvGeometry& g, const PhaseLayout& l, const Epilogue& epilogue, float bias, const float* acc,
               int64_t p, int64_t count, float* y) {
  const AxisGeometry &a0 = g.axes[0], &a1 = g.axes[1], &a2 = g.axes[2];
  const int64_t q12 = l.q[1] * l.q[2];
  int64_t o0 = p / q12, rest = p % q12;
  int64_t o1 = rest / l.q[2], o2 = rest % l.q[2];
  int64_t done = 0;
  while (done < count) {
    const int64_t span = std::min(count - done, l.q[2] - o2);  // to the end of this virtual row
    if (o0 < a0.out && o1 < a1.out && o2 < a2.out) {
      const int64_t n = std::min(span, a2.out - o2);
      float* dst = y + (o0 * a1.out + o1) * a2.out + o2;
      const float* src = acc + done;
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i] + bias;
      ApplyEpilogue(epilogue, dst, n);
    }
    done += span;
    o2 = 0;
    if (++o1 == l.q[1]) {
      o1 = 0;
      ++o0;
    }
  }
}

}  // namespace

void SerialFor(int64_t total, const std::function<void(int64_t)>& body) {
  for (int64_t i = 0; i < total; ++i) body(i);
}

ConvGeometry PrepareCall(const ConvAttributes& attrs, const SparseWeights& weights,
                         const std::vector<int64_t>& x_shape) {
  ConvGeometry g = ResolveGeometry(attrs, x_shape, weights.out_channels());
  weights.CheckInputChannels(g.in_channels, g.group);
  return g;
}

void SparseConvCpu(const ConvAttributes& attrs, const SparseWeights& weights, const float* bias,
                   const ConvGeometry& g, const float* x, float* y, const ParallelFor& parallel_for) {
  if (g.out_elements == 0) return;
  static const TileFn tile = SelectTile();
  const PhaseLayout l = MakeLayout(g);

  std::vector<float> buffer;
  const float* src = x;
  if (l.copy) {
    buffer.resize(static_cast<size_t>(g.batch * g.in_channels * l.channel_stride));
    const int64_t in_plane = g.axes[0].in * g.axes[1].in * g.axes[2].in;
    parallel_for(g.batch * g.in_channels, [&](int64_t plane) {
      FillPlane(g, l, x + plane * in_plane, buffer.data() + plane * l.channel_stride);
    });
    src = buffer.data();
  }

  // Each nonzero's offset from the virtual position, in this call's layout.
  std::vector<int64_t> offsets(static_cast<size_t>(weights.nnz()));
  for (int64_t j = 0; j < weights.nnz(); ++j) {
    const Tap& t = weights.taps()[j];
    int64_t phase = 0, inner = 0;
    for (int a = 0; a < kMaxSpatialRank; ++a) {
      const int64_t pos = t.k[a] * g.axes[a].dilation;
      phase = phase * g.axes[a].stride + pos % g.axes[a].stride;
      inner = inner * l.q[a] + pos / g.axes[a].stride;
    }
    offsets[j] = t.channel * l.channel_stride + phase * l.phase_plane + inner;
  }

  // Virtual positions of one channel: up to the last output position.
  const AxisGeometry &a0 = g.axes[0], &a1 = g.axes[1], &a2 = g.axes[2];
  const int64_t length = ((a0.out - 1) * l.q[1] + (a1.out - 1)) * l.q[2] + a2.out;
  const int64_t block = kBlockTiles * kTile;
  const int64_t position_blocks = (length + block - 1) / block;
  // Channel blocks: enough tasks for the thread pool, few enough to reuse each input window.
  const int64_t channel_block = std::max<int64_t>(1, std::min<int64_t>(g.out_channels_per_group, 16));
  const int64_t channel_blocks = (g.out_channels + channel_block - 1) / channel_block;
  const Epilogue epilogue = attrs.epilogue;

  parallel_for(g.batch * channel_blocks * position_blocks, [&](int64_t task) {
    const int64_t pb = task % position_blocks;
    const int64_t cb = (task / position_blocks) % channel_blocks;
    const int64_t n = task / (position_blocks * channel_blocks);
    const int64_t p_begin = pb * block, p_end = std::min(length, p_begin + block);
    const int64_t m_end = std::min(g.out_channels, (cb + 1) * channel_block);
    alignas(64) float acc[kTile];
    for (int64_t m = cb * channel_block; m < m_end; ++m) {
      const int64_t group = m / g.out_channels_per_group;
      const float* in = src + (n * g.in_channels + group * g.in_channels_per_group) * l.channel_stride;
      const int64_t begin = weights.row_begin(m), nnz = weights.row_end(m) - begin;
      float* out = y + (n * g.out_channels + m) * g.out_plane;
      const float b = bias ? bias[m] : 0.0f;
      for (int64_t p = p_begin; p < p_end; p += kTile) {
        const int valid = static_cast<int>(std::min<int64_t>(kTile, p_end - p));
        tile(in + p, offsets.data() + begin, weights.values() + begin, nnz, valid, acc);
        StoreTile(g, l, epilogue, b, acc, p, valid, out);
      }
    }
  });
}

const char* CpuKernelIsa() {
#ifdef ONNX_SPARSIFY_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
#endif
  return "baseline";
}

}  // namespace onnx_sparsify
