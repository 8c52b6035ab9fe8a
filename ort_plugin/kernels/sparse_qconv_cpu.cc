#include "kernels/sparse_qconv_cpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "kernels/errors.h"
#include "kernels/loop_bodies.h"
#include "kernels/qconv_vnni.h"

namespace onnx_sparsify {
namespace {

constexpr int64_t kRowChunk = 256;  // output positions accumulated at once

// x - x_zero_point as int16, for every element of X.
template <class T>
void SubtractZero(const T* x, int64_t n, int32_t zero, int16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int16_t>(static_cast<int32_t>(x[i]) - zero);
}

// One output channel plane of image n: each output row's positions accumulated in int32 from the
// staged input `in` (the channel's group, phase layout), then requantized into `y`.
template <class T>
void ComputeChannel(const ConvGeometry& g, const QuantizedWeights& w, const int64_t* offsets, const int16_t* in,
                    int64_t m, T* y) {
  const PhaseLayout& l = g.layout;
  const QuantParams& q = w.quant();
  const int32_t bias = w.bias() ? w.bias()[m] : 0;
  const float multiplier = q.multipliers[static_cast<size_t>(m)];
  const int64_t begin = w.weights().row_begin(m), end = w.weights().row_end(m);
  const int8_t* values = w.values();
  int32_t acc[kRowChunk];
  for (int64_t o0 = 0; o0 < g.axes[0].out; ++o0) {
    for (int64_t o1 = 0; o1 < g.axes[1].out; ++o1) {
      const int64_t virtual_row = (o0 * l.extent[1] + o1) * l.extent[2];
      T* out = y + (o0 * g.axes[1].out + o1) * g.axes[2].out;
      for (int64_t c0 = 0; c0 < g.axes[2].out; c0 += kRowChunk) {
        const int64_t n = std::min(kRowChunk, g.axes[2].out - c0);
        std::fill(acc, acc + n, bias);
        for (int64_t j = begin; j < end; ++j) {
          const int32_t v = values[j];
          const int16_t* src = in + virtual_row + c0 + offsets[j];
          for (int64_t t = 0; t < n; ++t) acc[t] += v * src[t];
        }
        for (int64_t t = 0; t < n; ++t) {
          out[c0 + t] = static_cast<T>(Requantize(acc[t], multiplier, q.y_zero, q.y_min(), q.y_max()));
        }
      }
    }
  }
}

// The centered input (x - x_zero_point as int16) of every image and channel in the phase layout:
// X's centered copy itself where the layout needs no copy.
template <class T>
const int16_t* StageCentered(const ConvGeometry& g, const QuantizedWeights& w, const T* x,
                             const ParallelFor& parallel_for, const ScratchAllocator& scratch) {
  const PhaseLayout& l = g.layout;
  const int64_t in_plane = g.axes[0].in * g.axes[1].in * g.axes[2].in;
  const int64_t planes = g.batch * g.in_channels;
  // int16 buffers from float scratch: two int16 per float.
  auto int16_scratch = [&](int64_t n) {
    return reinterpret_cast<int16_t*>(scratch(static_cast<size_t>(n + 1) / 2));
  };
  int16_t* centered = int16_scratch(CheckedMul(planes, in_plane, "input"));
  parallel_for(planes, [&](int64_t p) {
    SubtractZero(x + p * in_plane, in_plane, w.quant().x_zero, centered + p * in_plane);
  });
  if (!l.copy) return centered;
  int16_t* buffer = int16_scratch(planes * l.channel_stride);
  parallel_for(planes, [&](int64_t p) {
    FillPlaneBody<int16_t>(g, centered + p * in_plane, buffer + p * l.channel_stride);
  });
  return buffer;
}

// Input channels per quad (one vpdpbusd operand's 4 bytes per position).
constexpr int64_t kQuad = 4;
// Bytes read past a quad row's last position by whole-vector loads.
constexpr int64_t kQuadSlack = 64;
// The uint8 value vpdpbusd reads for x: x itself, or int8 x + 128.
int32_t UnsignedOffset(const QuantParams& q) { return q.is_signed ? 128 : 0; }

// Each output channel's VNNI start value: the quads hold x + offset where the sum wants
// x - x_zero_point, so the bias loses (x_zero_point + offset) times the channel's weight sum.
std::vector<int32_t> Inits(const QuantizedWeights& w) {
  const int32_t zero = w.quant().x_zero + UnsignedOffset(w.quant());
  std::vector<int32_t> inits(static_cast<size_t>(w.weights().out_channels()));
  for (int64_t m = 0; m < w.weights().out_channels(); ++m) {
    inits[static_cast<size_t>(m)] = (w.bias() ? w.bias()[m] : 0) - zero * w.row_sum(m);
  }
  return inits;
}

// dst[4p + i] = planes[i * n + p] ^ flip for i < 4: a quad's 4 padded channels, one dword per position.
// (Compiled for AVX-512: only the VNNI path stages quads, and the loop vectorizes there.)
#ifdef ONNX_SPARSIFY_X86
__attribute__((target("avx512f,avx512bw")))
#endif
void Interleave(const uint8_t* planes, int64_t n, uint8_t flip, uint8_t* dst) {
  const uint32_t flips = flip * 0x01010101u;
  const uint8_t *a = planes, *b = planes + n, *c = planes + 2 * n, *d = planes + 3 * n;
  for (int64_t p = 0; p < n; ++p) {
    const uint32_t v = (a[p] | b[p] << 8 | c[p] << 16 | static_cast<uint32_t>(d[p]) << 24) ^ flips;
    std::memcpy(dst + 4 * p, &v, 4);
  }
}

// Each group's channels in quads: position p of quad k holds channels 4k .. 4k + 3 of the group as
// uint8 (x, or int8 x + 128), padded with the zero point (so shifted), as are the channels past the
// group's end. One pass: each channel is padded into the thread's buffer, then interleaved.
template <class T>
const uint8_t* StageQuads(const ConvGeometry& g, const QuantizedWeights& w, const T* x,
                          const ParallelFor& parallel_for, const ScratchAllocator& scratch) {
  const int64_t stride = g.layout.channel_stride;
  const int64_t in_plane = g.axes[0].in * g.axes[1].in * g.axes[2].in;
  const int64_t quads = (g.in_channels_per_group + kQuad - 1) / kQuad;
  const int64_t bytes = CheckedAdd(CheckedMul(CheckedMul(CheckedMul(g.batch, g.group, "quads"), quads, "quads"),
                                              CheckedMul(stride, kQuad, "quads"), "quads"),
                                   kQuadSlack, "quads");
  uint8_t* out = reinterpret_cast<uint8_t*>(scratch(static_cast<size_t>(bytes + 3) / 4));
  const uint8_t flip = static_cast<uint8_t>(UnsignedOffset(w.quant()));  // int8 + 128 as bits: xor 0x80
  const auto raw_zero = static_cast<uint8_t>(w.quant().x_zero);           // the zero point's own bits
  std::fill(out + bytes - kQuadSlack, out + bytes, static_cast<uint8_t>(raw_zero ^ flip));
  parallel_for(g.batch * g.group * quads, [&](int64_t task) {
    const int64_t k = task % quads, ng = task / quads;  // ng: image n, group
    uint8_t* dst = out + task * stride * kQuad;
    thread_local std::vector<uint8_t> buffer;
    buffer.resize(static_cast<size_t>(kQuad * stride));
    uint8_t* planes = buffer.data();  // one TLS look-up, not one per element
    for (int64_t i = 0; i < kQuad; ++i) {
      const int64_t c = k * kQuad + i;
      uint8_t* plane = planes + i * stride;
      if (c >= g.in_channels_per_group) {
        std::fill(plane, plane + stride, raw_zero);
      } else {
        const auto* src = reinterpret_cast<const uint8_t*>(x + (ng * g.in_channels_per_group + c) * in_plane);
        if (!g.layout.copy) {
          std::copy(src, src + stride, plane);
        } else if (!g.has_padding && g.layout.phases == 1) {
          // Copied for alignment only (PhaseLayout::phase_plane): the plane, then its gap.
          std::copy(src, src + in_plane, plane);
          std::fill(plane + in_plane, plane + stride, raw_zero);
        } else {
          FillPlaneBody<uint8_t>(g, src, plane, raw_zero);
        }
      }
    }
    Interleave(planes, stride, flip, dst);
  });
  return out;
}

template <class T>
void Run(const ConvGeometry& g, const QuantizedWeights& w, const QuantizedPlan& plan, const int64_t* offsets,
         const QuadTerms* quads, const T* x, T* y, const ParallelFor& parallel_for, const ScratchAllocator& scratch) {
  const PhaseLayout& l = g.layout;
  if (quads) {
    const uint8_t* in = StageQuads(g, w, x, parallel_for, scratch);
    const int64_t group_bytes = (g.in_channels_per_group + kQuad - 1) / kQuad * l.channel_stride * kQuad;
    const int32_t* inits = plan.inits().data();  // made with every VNNI plan, as the quads are
    if (const JitTiles* code = plan.CodeFor(g)) {
      const int64_t blocks = code->block_count();
      parallel_for(g.batch * blocks, [&](int64_t task) {
        const int64_t n = task / blocks;
        const JitTiles::Block& block = code->block(task % blocks);
        const int64_t group = block.m_begin / g.out_channels_per_group;
        QuadBlockVnni(g, *code, block, w.quant(), inits, in + (n * g.group + group) * group_bytes,
                      y + n * g.out_channels * g.out_plane);
      });
      return;
    }
    parallel_for(g.batch * g.out_channels, [&](int64_t task) {
      const int64_t n = task / g.out_channels, m = task % g.out_channels;
      const int64_t group = m / g.out_channels_per_group;
      QuadRowsVnni(g, *quads, w.quant(), m, inits[m], in + (n * g.group + group) * group_bytes, y + task * g.out_plane);
    });
    return;
  }
  const int16_t* staged = StageCentered(g, w, x, parallel_for, scratch);
  parallel_for(g.batch * g.out_channels, [&](int64_t task) {
    const int64_t n = task / g.out_channels, m = task % g.out_channels;
    const int64_t group = m / g.out_channels_per_group;
    const int16_t* in = staged + (n * g.in_channels + group * g.in_channels_per_group) * l.channel_stride;
    ComputeChannel<T>(g, w, offsets, in, m, y + task * g.out_plane);
  });
}

}  // namespace

QuantizedWeights::QuantizedWeights(CpuWeights weights, QuantParams quant, std::vector<int32_t> bias)
    : weights_(std::move(weights)), quant_(std::move(quant)), bias_(std::move(bias)) {
  const int64_t out_channels = weights_.out_channels();
  if (!bias_.empty() && static_cast<int64_t>(bias_.size()) != out_channels) {
    throw InvalidArgument("B must have shape [" + std::to_string(out_channels) + "]");
  }
  if (static_cast<int64_t>(quant_.multipliers.size()) != out_channels) {
    throw InvalidArgument("w_scale must hold 1 or " + std::to_string(out_channels) + " values");
  }
  values_.resize(static_cast<size_t>(weights_.nnz()));
  for (int64_t j = 0; j < weights_.nnz(); ++j) {
    const float v = weights_.values()[j];
    if (!(v >= -128.0f && v <= 127.0f) || v != std::nearbyint(v)) {
      throw InvalidArgument("W_values must be int8 (the nonzeros of W minus its zero point)");
    }
    values_[static_cast<size_t>(j)] = static_cast<int8_t>(v);
  }
  // |x - x_zero_point| <= 255: each output's sum is bounded by its row's sum of |w| times 255 (also
  // with VNNI's unsigned x up to 255 and the zero point's share taken off at the start).
  row_sums_.resize(static_cast<size_t>(out_channels));
  for (int64_t m = 0; m < out_channels; ++m) {
    int64_t bound = bias_.empty() ? 0 : std::abs(int64_t{bias_[static_cast<size_t>(m)]});
    int64_t sum = 0;
    for (int64_t j = weights_.row_begin(m); j < weights_.row_end(m); ++j) {
      bound += 255 * std::abs(int64_t{values_[j]});
      sum += values_[j];
    }
    row_sums_[static_cast<size_t>(m)] = static_cast<int32_t>(sum);  // |sum| <= bound / 255
    if (bound > std::numeric_limits<int32_t>::max()) {
      throw InvalidArgument("output channel " + std::to_string(m) +
                            ": its int32 accumulation could overflow (too many nonzeros of too large a magnitude)");
    }
  }
}

QuadTerms PackQuads(const QuantizedWeights& w, const std::vector<int64_t>& offsets, int64_t channel_stride) {
  const CpuWeights& cw = w.weights();
  QuadTerms t;
  t.row_begin.push_back(0);
  std::vector<std::pair<int64_t, uint32_t>> row;  // (offset, dword)
  for (int64_t m = 0; m < cw.out_channels(); ++m) {
    row.clear();
    for (int64_t j = cw.row_begin(m); j < cw.row_end(m); ++j) {
      const int64_t c = cw.taps()[j].channel;
      // The nonzero's place in its channel's planes, moved to its quad's.
      const int64_t at = offsets[static_cast<size_t>(j)] - c * channel_stride;
      const int64_t offset = c / kQuad * channel_stride + at;
      const auto byte = static_cast<uint32_t>(static_cast<uint8_t>(w.values()[j])) << (8 * (c % kQuad));
      row.emplace_back(offset, byte);
    }
    std::sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < row.size(); ++i) {
      if (i > 0 && row[i].first == row[i - 1].first) {
        t.dwords.back() |= row[i].second;  // another channel of the same quad and tap
      } else {
        t.offsets.push_back(row[i].first);
        t.dwords.push_back(row[i].second);
      }
    }
    t.row_begin.push_back(static_cast<int64_t>(t.offsets.size()));
  }
  return t;
}

QuantizedPlan QuantizedPlan::Make(const ConvAttributes& attrs, const QuantizedWeights& weights, CpuIsa isa,
                                  CpuStrategy strategy, const std::vector<int64_t>& x_shape) {
  QuantizedPlan plan;
  plan.cpu_ = CpuPlan::Make(attrs, weights.weights(), isa, CpuStrategy::kLoops, x_shape);
  if (isa != CpuIsa::kAvx512Vnni) return plan;
  plan.inits_ = Inits(weights);
  if (x_shape.empty()) return plan;
  const ConvGeometry g = PrepareCall(attrs, weights.weights(), x_shape);
  plan.quads_ = PackQuads(weights, plan.cpu_.offsets(), g.layout.channel_stride);
  if (strategy == CpuStrategy::kGenerated) {
    const JitRows rows{weights.weights().out_channels(), plan.quads_.row_begin.data(), plan.quads_.offsets.data(),
                       plan.quads_.dwords.data()};
    // One chunk of positions per call: channel j's sums at j * kCpuTilePositions in the buffer.
    plan.code_ = JitTiles::Build(isa, JitProduct::kInt8Quads, rows, g.layout.channel_stride,
                                 g.out_channels_per_group, kCpuTilePositions);
  }
  return plan;
}

const QuadTerms* QuantizedPlan::QuadsFor(const ConvGeometry& g) const {
  return quads_.row_begin.empty() || !cpu_.Serves(g) ? nullptr : &quads_;
}

void SparseQConvCpu(const QuantizedPlan& plan, const QuantizedWeights& w, const ConvGeometry& g, const void* x,
                    void* y, const ParallelFor& parallel_for, const ScratchAllocator& scratch) {
  if (g.out_elements == 0) return;
  const bool served = plan.cpu().Serves(g);
  std::vector<int64_t> call_offsets;
  if (!served) call_offsets = TapOffsets(w.weights(), g.layout);
  const std::vector<int64_t>& offsets = served ? plan.cpu().offsets() : call_offsets;
  QuadTerms call_quads;
  const QuadTerms* quads = plan.QuadsFor(g);
  if (!quads && plan.cpu().isa() == CpuIsa::kAvx512Vnni) {
    call_quads = PackQuads(w, offsets, g.layout.channel_stride);
    quads = &call_quads;
  }
  if (w.quant().is_signed) {
    Run(g, w, plan, offsets.data(), quads, static_cast<const int8_t*>(x), static_cast<int8_t*>(y), parallel_for,
        scratch);
  } else {
    Run(g, w, plan, offsets.data(), quads, static_cast<const uint8_t*>(x), static_cast<uint8_t*>(y), parallel_for,
        scratch);
  }
}

}  // namespace onnx_sparsify
