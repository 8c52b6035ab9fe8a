#include "kernels/jit_tiles.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <limits>
#include <tuple>

#include "kernels/cpu_isa.h"

#if defined(ONNX_SPARSIFY_X86) && defined(__linux__)
#define ONNX_SPARSIFY_JIT 1
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace onnx_sparsify {
namespace {

#ifdef ONNX_SPARSIFY_JIT
// Registers of the generated code, all caller-saved in the System V ABI: rdi holds the JitArgs
// pointer throughout.
enum Gpr : int { kRax = 0, kRcx = 1, kRdx = 2, kRsi = 6, kRdi = 7, kR8 = 8, kR9 = 9, kR10 = 10, kR11 = 11 };
constexpr int kInputZmm = 31;
constexpr int kTailMask = 2;  // k2
constexpr int kVectorBytes = 64;

// JitArgs field offsets, in bytes.
constexpr int kArgIn = offsetof(JitArgs, in), kArgValues = offsetof(JitArgs, values), kArgOut = offsetof(JitArgs, out),
              kArgBias = offsetof(JitArgs, bias), kArgRows = offsetof(JitArgs, rows),
              kArgVectors = offsetof(JitArgs, vectors), kArgInRow = offsetof(JitArgs, in_row_bytes),
              kArgOutRow = offsetof(JitArgs, out_row_bytes), kArgTail = offsetof(JitArgs, tail_mask);

// Encodes the instructions the blocks need. EVEX (Intel SDM vol. 2, 2.7): 62, then
// P0 = R X B R' 0 0 m m, P1 = W v v v v 1 p p, P2 = z L'L b V' a a a, with R, X, B, R', vvvv
// and V' stored inverted. Memory operands are [base + disp] with a base whose low 3 bits are
// neither 4 nor 5 (no SIB byte, no RIP-relative form), disp8 scaled by the operand size where it
// fits (EVEX's compressed displacement), else disp32.
class Emitter {
 public:
  std::vector<uint8_t>& bytes() { return b_; }
  size_t size() const { return b_.size(); }

  // vbroadcastss zmm(r), dword [base + disp]
  void BroadcastZmm(int r, int base, int64_t disp) { EvexMemory(2, 1, 0x18, r, 0, false, 0, base, disp, 4); }
  // vmovups zmm(r), [base + disp]
  void LoadZmm(int r, int base, int64_t disp) { EvexMemory(1, 0, 0x10, r, 0, false, 0, base, disp, kVectorBytes); }
  // vmovups [base + disp]{k(mask)}, zmm(r); mask 0: unmasked
  void StoreZmm(int base, int64_t disp, int r, int mask) {
    EvexMemory(1, 0, 0x11, r, 0, false, mask, base, disp, kVectorBytes);
  }
  // vfmadd231ps zmm(acc), zmm(x), dword [base + disp]{1to16}
  void FmaBroadcast(int acc, int x, int base, int64_t disp) { EvexMemory(2, 1, 0xB8, acc, x, true, 0, base, disp, 4); }
  // kmovw k(k), word [base + disp8]
  void LoadMask(int k, int base, int disp8) { Bytes({0xC5, 0xF8, 0x90, ModRm(1, k, base), Byte(disp8)}); }
  // mov reg, qword [base + disp8]
  void LoadQword(int reg, int base, int disp8) {
    Bytes({Rex(reg, base), 0x8B, ModRm(1, reg, base), Byte(disp8)});
  }
  // add reg, qword [base + disp8]
  void AddQword(int reg, int base, int disp8) {
    Bytes({Rex(reg, base), 0x03, ModRm(1, reg, base), Byte(disp8)});
  }
  // mov dst, src
  void Mov(int dst, int src) { Bytes({Rex(src, dst), 0x89, ModRm(3, src, dst)}); }
  // add reg, imm32
  void AddImm(int reg, int32_t imm) {
    Bytes({Rex(0, reg), 0x81, ModRm(3, 0, reg)});
    Imm32(imm);
  }
  void CmpImm8(int reg, int imm) { Bytes({Rex(0, reg), 0x83, ModRm(3, 7, reg), Byte(imm)}); }
  void Dec(int reg) { Bytes({Rex(0, reg), 0xFF, ModRm(3, 1, reg)}); }
  // Conditional (0F 8x: 0x84 je, 0x85 jne) or unconditional jump to `target`; a target not yet
  // known is patched with Patch(the returned position, target).
  size_t Jump(uint8_t condition, size_t target = 0) {
    if (condition) {
      Bytes({0x0F, condition});
    } else {
      b_.push_back(0xE9);
    }
    const size_t at = b_.size();
    Imm32(0);
    Patch(at, target);
    return at;
  }
  void Patch(size_t at, size_t target) {
    const auto rel = static_cast<int32_t>(static_cast<int64_t>(target) - static_cast<int64_t>(at + 4));
    std::memcpy(b_.data() + at, &rel, 4);  // x86 is little-endian
  }
  void VzeroupperRet() { Bytes({0xC5, 0xF8, 0x77, 0xC3}); }
  void AlignTo(size_t n) {
    while (b_.size() % n) b_.push_back(0x90);
  }

 private:
  static uint8_t Byte(int v) { return static_cast<uint8_t>(v); }
  static uint8_t Rex(int reg, int rm) { return Byte(0x48 | (reg & 8) >> 1 | (rm & 8) >> 3); }  // REX.W R B
  static uint8_t ModRm(int mod, int reg, int rm) { return Byte(mod << 6 | (reg & 7) << 3 | (rm & 7)); }
  void Bytes(std::initializer_list<uint8_t> v) { b_.insert(b_.end(), v); }
  void Imm32(int32_t v) {
    uint8_t le[4];
    std::memcpy(le, &v, 4);
    b_.insert(b_.end(), le, le + 4);
  }
  void EvexMemory(int map, int pp, uint8_t opcode, int reg, int vvvv, bool broadcast, int mask, int base, int64_t disp,
                  int scale) {
    const auto inv = [](int bit) { return bit ? 0 : 1; };
    b_.push_back(0x62);
    b_.push_back(Byte(inv(reg & 8) << 7 | 1 << 6 | inv(base & 8) << 5 | inv(reg & 16) << 4 | map));
    b_.push_back(Byte((~vvvv & 15) << 3 | 1 << 2 | pp));                                   // W0
    b_.push_back(Byte(2 << 5 | (broadcast ? 1 : 0) << 4 | inv(vvvv & 16) << 3 | mask));  // 512 bits
    b_.push_back(opcode);
    const bool short_disp = disp % scale == 0 && disp / scale >= -128 && disp / scale <= 127;
    b_.push_back(ModRm(short_disp ? 1 : 2, reg, base));
    if (short_disp) {
      b_.push_back(Byte(static_cast<int>(disp / scale)));
    } else {
      Imm32(static_cast<int32_t>(disp));
    }
  }

  std::vector<uint8_t> b_;
};

struct Term {
  int64_t offset;  // input element
  int slot;        // accumulator: channel within the block
  float value;
};

// One block's function (JitArgs). Its terms are grouped by input offset, so each input vector is
// loaded once; values are appended to `values` in the order the code reads them.
void EmitBlock(Emitter& e, std::vector<Term>& terms, int channels, int64_t out_stride, std::vector<float>& values) {
  std::sort(terms.begin(), terms.end(),
            [](const Term& a, const Term& b) { return std::tie(a.offset, a.slot) < std::tie(b.offset, b.slot); });
  const int64_t first = static_cast<int64_t>(values.size());
  // r8/r9: this row's input/output, r10: bias, r11: rows left; rdx/rcx: this vector's
  // input/output, rax: vectors left in the row, rsi: the values.
  e.LoadQword(kR8, kRdi, kArgIn);
  e.LoadQword(kR9, kRdi, kArgOut);
  e.LoadQword(kR10, kRdi, kArgBias);
  e.LoadQword(kR11, kRdi, kArgRows);
  e.LoadMask(kTailMask, kRdi, kArgTail);
  const size_t row_loop = e.size();
  e.Mov(kRdx, kR8);
  e.Mov(kRcx, kR9);
  e.LoadQword(kRax, kRdi, kArgVectors);
  e.AlignTo(16);
  const size_t vector_loop = e.size();
  e.LoadQword(kRsi, kRdi, kArgValues);
  for (int j = 0; j < channels; ++j) e.BroadcastZmm(j, kR10, int64_t{j} * 4);
  // rsi advances through the values so that most broadcasts fit an 8-bit displacement;
  // `base` is the value index rsi points at.
  int64_t base = 0;
  for (size_t i = 0; i < terms.size();) {
    const int64_t offset = terms[i].offset;
    e.LoadZmm(kInputZmm, kRdx, offset * 4);
    for (; i < terms.size() && terms[i].offset == offset; ++i) {
      const int64_t local = static_cast<int64_t>(values.size()) - first;
      values.push_back(terms[i].value);
      if (local - base > 127) {
        e.AddImm(kRsi, static_cast<int32_t>((local + 128 - base) * 4));
        base = local + 128;
      }
      e.FmaBroadcast(terms[i].slot, kInputZmm, kRsi, (local - base) * 4);
    }
  }
  e.CmpImm8(kRax, 1);
  const size_t to_last = e.Jump(0x84);  // je: the row's last vector
  for (int j = 0; j < channels; ++j) e.StoreZmm(kRcx, j * out_stride * 4, j, 0);
  const size_t to_next = e.Jump(0);
  e.Patch(to_last, e.size());
  for (int j = 0; j < channels; ++j) e.StoreZmm(kRcx, j * out_stride * 4, j, kTailMask);
  e.Patch(to_next, e.size());
  e.AddImm(kRdx, kVectorBytes);
  e.AddImm(kRcx, kVectorBytes);
  e.Dec(kRax);
  e.Jump(0x85, vector_loop);
  e.AddQword(kR8, kRdi, kArgInRow);
  e.AddQword(kR9, kRdi, kArgOutRow);
  e.Dec(kR11);
  e.Jump(0x85, row_loop);
  e.VzeroupperRet();
}
#endif

}  // namespace

bool JitTiles::Available() {
#ifdef ONNX_SPARSIFY_JIT
  static const bool available = [] {
    if (!CpuSupports(CpuIsa::kAvx512)) return false;
    const long page = sysconf(_SC_PAGESIZE);
    void* p = mmap(nullptr, static_cast<size_t>(page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    const bool ok = mprotect(p, static_cast<size_t>(page), PROT_READ | PROT_EXEC) == 0;
    munmap(p, static_cast<size_t>(page));
    return ok;
  }();
  return available;
#else
  return false;
#endif
}

std::unique_ptr<JitTiles> JitTiles::Build(const SparseWeights& weights, const std::vector<int64_t>& offsets,
                                          int64_t in_stride, int64_t out_channels_per_group, int64_t out_stride) {
#ifdef ONNX_SPARSIFY_JIT
  // About 8 bytes of code per nonzero: beyond kMaxNonzeros (some 100 MB) the loops run instead.
  constexpr int64_t kMaxNonzeros = int64_t{1} << 24;
  if (!Available() || out_channels_per_group <= 0 || static_cast<int64_t>(offsets.size()) != weights.nnz() ||
      weights.nnz() > kMaxNonzeros) {
    return nullptr;
  }
  // Every displacement must fit 32 bits: the offsets and the stores' channel planes (values:
  // rsi advances).
  constexpr int64_t kMaxElement = std::numeric_limits<int32_t>::max() / 4;
  if (out_stride <= 0 || out_stride > kMaxElement / kJitMaxChannels) return nullptr;
  for (int64_t o : offsets) {
    if (o < 0 || o > kMaxElement) return nullptr;
  }
  const int64_t groups = weights.out_channels() / out_channels_per_group;
  const int64_t per_group = (out_channels_per_group + kJitMaxChannels - 1) / kJitMaxChannels;
  const int64_t width = (out_channels_per_group + per_group - 1) / per_group;  // channels per block, evened out

  std::unique_ptr<JitTiles> jit(new JitTiles());
  jit->blocks_per_group_ = per_group;
  jit->in_stride_ = in_stride;
  jit->out_stride_ = out_stride;
  Emitter e;
  std::vector<size_t> code_starts, value_starts;
  std::vector<Term> terms;
  for (int64_t group = 0; group < groups; ++group) {
    for (int64_t b = 0; b < per_group; ++b) {
      const int64_t m_begin = group * out_channels_per_group + b * width;
      const int64_t m_end = std::min((group + 1) * out_channels_per_group, m_begin + width);
      terms.clear();
      for (int64_t m = m_begin; m < m_end; ++m) {
        for (int64_t j = weights.row_begin(m); j < weights.row_end(m); ++j) {
          terms.push_back(Term{offsets[static_cast<size_t>(j)], static_cast<int>(m - m_begin), weights.values()[j]});
        }
      }
      e.AlignTo(64);
      while (jit->values_.size() % 16) jit->values_.push_back(0.0f);
      code_starts.push_back(e.bytes().size());
      value_starts.push_back(jit->values_.size());
      EmitBlock(e, terms, static_cast<int>(m_end - m_begin), out_stride, jit->values_);
      jit->blocks_.push_back(Block{m_begin, m_end, nullptr, nullptr});
    }
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const std::vector<uint8_t>& code = e.bytes();
  const size_t mapped = (code.size() + page - 1) / page * page;
  void* p = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  std::memcpy(p, code.data(), code.size());
  if (mprotect(p, mapped, PROT_READ | PROT_EXEC) != 0) {
    munmap(p, mapped);
    return nullptr;
  }
  jit->code_ = p;
  jit->mapped_bytes_ = mapped;
  jit->code_bytes_ = code.size();
  for (size_t i = 0; i < jit->blocks_.size(); ++i) {
    jit->blocks_[i].fn = reinterpret_cast<Fn>(static_cast<uint8_t*>(p) + code_starts[i]);
    jit->blocks_[i].values = jit->values_.data() + value_starts[i];
  }
  return jit;
#else
  (void)weights;
  (void)offsets;
  (void)out_channels_per_group;
  (void)in_stride;
  (void)out_stride;
  return nullptr;
#endif
}

JitTiles::~JitTiles() {
#ifdef ONNX_SPARSIFY_JIT
  if (code_) munmap(code_, mapped_bytes_);
#endif
}

}  // namespace onnx_sparsify
