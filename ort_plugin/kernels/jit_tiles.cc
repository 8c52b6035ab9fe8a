#include "kernels/jit_tiles.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

#if defined(ONNX_SPARSIFY_X86) && defined(__linux__) && defined(ONNX_SPARSIFY_WITH_XBYAK)
#define ONNX_SPARSIFY_JIT 1
#include <sys/mman.h>
#include <unistd.h>

#include "kernels/jit_emit.h"
#endif

namespace onnx_sparsify {
namespace {

// Lane masks for the AVX2 tail: kTailLanes + 8 - tail holds -1 in its first `tail` lanes.
alignas(64) constexpr int32_t kTailLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

#ifdef ONNX_SPARSIFY_JIT
// The generator for `isa`, null for none. Generated AVX2 code is not the default: measured
// against the AVX2 loops it gains little (docs/performance.md), so it runs only when forced.
const jit::Generator* GeneratorFor(CpuIsa isa, JitProduct product = JitProduct::kFloat) {
  static constexpr jit::Generator kAvx512{16, 28, jit::EmitBlockAvx512, true};
  static constexpr jit::Generator kAvx2{8, 14, jit::EmitBlockAvx2, false};
  static constexpr jit::Generator kVnni{16, 28, jit::EmitBlockVnni, true};
  static_assert(kAvx512.max_channels <= kJitMaxChannels && kAvx2.max_channels <= kJitMaxChannels &&
                kVnni.max_channels <= kJitMaxChannels);
  if (product == JitProduct::kInt8Quads) return isa == CpuIsa::kAvx512Vnni ? &kVnni : nullptr;
  switch (isa) {
    case CpuIsa::kAvx512Vnni:
    case CpuIsa::kAvx512: return &kAvx512;
    case CpuIsa::kAvx2: return &kAvx2;
    case CpuIsa::kBaseline: return nullptr;
  }
  return nullptr;
}

bool ExecutableMemoryGranted() {
  static const bool granted = [] {
    const long page = sysconf(_SC_PAGESIZE);
    void* p = mmap(nullptr, static_cast<size_t>(page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    const bool ok = mprotect(p, static_cast<size_t>(page), PROT_READ | PROT_EXEC) == 0;
    munmap(p, static_cast<size_t>(page));
    return ok;
  }();
  return granted;
}
#endif

}  // namespace

JitArgs MakeJitArgs(const float* in, const float* values, float* out, const float* bias, int64_t rows,
                    int64_t vectors, int64_t in_row, int64_t out_row, int64_t tail) {
  return JitArgs{in,
                 values,
                 out,
                 bias,
                 rows,
                 vectors,
                 in_row * int64_t{sizeof(float)},
                 out_row * int64_t{sizeof(float)},
                 tail >= 16 ? 0xFFFFu : (1u << tail) - 1,
                 kTailLanes + 8 - std::min<int64_t>(tail, 8)};
}

#ifdef ONNX_SPARSIFY_JIT
struct JitTiles::Code {
  // AutoGrow: the buffer grows as blocks are appended; ready() resolves the labels and maps it
  // read + execute.
  Xbyak::CodeGenerator generator{4096, Xbyak::AutoGrow};
};
#else
struct JitTiles::Code {};
#endif

JitTiles::JitTiles() = default;
JitTiles::~JitTiles() = default;

bool JitTiles::Available(CpuIsa isa, JitProduct product) { return Unavailability(isa, product).empty(); }

std::string JitTiles::Unavailability(CpuIsa isa, JitProduct product) {
#ifdef ONNX_SPARSIFY_JIT
  if (!GeneratorFor(isa, product)) return std::string("no code generator for ") + CpuIsaName(isa);
  if (!CpuSupports(isa)) return std::string("the CPU lacks ") + CpuIsaName(isa);
  if (!ExecutableMemoryGranted()) return "executable memory refused";
  return "";
#else
  (void)isa;
  (void)product;
  return "code generation needs x86-64 Linux";
#endif
}

bool JitTiles::RunsByDefault(CpuIsa isa) {
#ifdef ONNX_SPARSIFY_JIT
  return GeneratorFor(isa) && GeneratorFor(isa)->by_default;
#else
  (void)isa;
  return false;
#endif
}

std::unique_ptr<JitTiles> JitTiles::Build(CpuIsa isa, const SparseWeights& weights,
                                          const std::vector<int64_t>& offsets, int64_t in_stride,
                                          int64_t out_channels_per_group, int64_t out_stride) {
  if (static_cast<int64_t>(offsets.size()) != weights.nnz()) return nullptr;
  std::vector<int64_t> row_begin(static_cast<size_t>(weights.out_channels()) + 1);
  for (int64_t m = 0; m <= weights.out_channels(); ++m) {
    row_begin[static_cast<size_t>(m)] = m < weights.out_channels() ? weights.row_begin(m) : weights.nnz();
  }
  std::vector<uint32_t> bits(static_cast<size_t>(weights.nnz()));
  if (!bits.empty()) std::memcpy(bits.data(), weights.values(), bits.size() * sizeof(float));
  const JitRows rows{weights.out_channels(), row_begin.data(), offsets.data(), bits.data()};
  return Build(isa, JitProduct::kFloat, rows, in_stride, out_channels_per_group, out_stride);
}

std::unique_ptr<JitTiles> JitTiles::Build(CpuIsa isa, JitProduct product, const JitRows& rows, int64_t in_stride,
                                          int64_t out_channels_per_group, int64_t out_stride) {
#ifdef ONNX_SPARSIFY_JIT
  // About 8 bytes of code per term: beyond kMaxTerms (some 100 MB) the loops run instead.
  constexpr int64_t kMaxTerms = int64_t{1} << 24;
  const int64_t terms_total = rows.row_begin[rows.out_channels];
  if (!Available(isa, product) || out_channels_per_group <= 0 || terms_total > kMaxTerms) return nullptr;
  const jit::Generator& gen = *GeneratorFor(isa, product);
  // Every displacement must fit 32 bits: the offsets and the stores' channel planes (values:
  // the cursor advances).
  constexpr int64_t kMaxElement = std::numeric_limits<int32_t>::max() / 4;
  if (out_stride <= 0 || out_stride > kMaxElement / gen.max_channels) return nullptr;
  for (int64_t j = 0; j < terms_total; ++j) {
    if (rows.offsets[j] < 0 || rows.offsets[j] > kMaxElement) return nullptr;
  }
  const int64_t groups = rows.out_channels / out_channels_per_group;
  const int64_t per_group = (out_channels_per_group + gen.max_channels - 1) / gen.max_channels;
  const int64_t width = (out_channels_per_group + per_group - 1) / per_group;  // channels per block, evened out

  std::unique_ptr<JitTiles> jit(new JitTiles());
  jit->code_ = std::make_unique<Code>();
  jit->blocks_per_group_ = per_group;
  jit->lanes_ = gen.lanes;
  jit->in_stride_ = in_stride;
  jit->out_stride_ = out_stride;
  Xbyak::CodeGenerator& c = jit->code_->generator;
  std::vector<size_t> code_starts, value_starts;
  struct Entry {
    jit::Term term;
    uint32_t value;
  };
  std::vector<Entry> entries;
  std::vector<jit::Term> terms;
  std::vector<uint32_t> values;
  try {
    for (int64_t group = 0; group < groups; ++group) {
      for (int64_t b = 0; b < per_group; ++b) {
        const int64_t m_begin = group * out_channels_per_group + b * width;
        const int64_t m_end = std::min((group + 1) * out_channels_per_group, m_begin + width);
        entries.clear();
        for (int64_t m = m_begin; m < m_end; ++m) {
          for (int64_t j = rows.row_begin[m]; j < rows.row_begin[m + 1]; ++j) {
            entries.push_back({{rows.offsets[j], static_cast<int>(m - m_begin)}, rows.values[j]});
          }
        }
        // By input offset, so that each input vector is loaded once per block.
        std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
          return std::tie(a.term.offset, a.term.slot) < std::tie(b.term.offset, b.term.slot);
        });
        terms.clear();
        while (values.size() % 16) values.push_back(0);
        value_starts.push_back(values.size());
        for (const Entry& e : entries) {
          terms.push_back(e.term);
          values.push_back(e.value);
        }
        c.align(64);
        code_starts.push_back(c.getSize());
        gen.emit(c, terms, static_cast<int>(m_end - m_begin), out_stride);
        jit->blocks_.push_back(Block{m_begin, m_end, nullptr, nullptr});
      }
    }
    c.readyRE();
  } catch (const Xbyak::Error&) {
    return nullptr;  // out of memory for the code, or a mapping refused: the loops run instead
  }
  jit->values_.resize(values.size());
  if (!values.empty()) std::memcpy(jit->values_.data(), values.data(), values.size() * sizeof(float));
  jit->code_bytes_ = c.getSize();
  for (size_t i = 0; i < jit->blocks_.size(); ++i) {
    jit->blocks_[i].fn = reinterpret_cast<Fn>(const_cast<uint8_t*>(c.getCode()) + code_starts[i]);
    jit->blocks_[i].values = jit->values_.data() + value_starts[i];
  }
  return jit;
#else
  (void)isa;
  (void)product;
  (void)rows;
  (void)out_channels_per_group;
  (void)in_stride;
  (void)out_stride;
  return nullptr;
#endif
}

}  // namespace onnx_sparsify
