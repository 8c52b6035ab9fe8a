// SparseConv's attributes and the convolution geometry they imply for one input shape.
// Knows nothing of ONNX Runtime: adapters supply attributes through AttributeSource.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace onnx_sparsify {

inline constexpr int kMaxSpatialRank = 3;

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };
enum class Activation {
  kNone,
  kRelu,
  kLeakyRelu,
  kClip,
  kSigmoid,
  kHardSigmoid,
  kHardSwish,
  kSiLU,
  kTanh,
  kGelu,       // exact: 0.5 v (1 + erf(v / sqrt(2)))
  kGeluTanh,   // ONNX Gelu approximate="tanh"
  kQuickGelu,  // v sigmoid(alpha v) (ORT's com.microsoft QuickGelu; Swish with beta = alpha)
  kMish,       // v tanh(softplus(v))
  kPRelu,      // v < 0 ? slope[m] v : v, slopes per output channel (ConvAttributes::activation_slopes)
};

// The most steps an epilogue chain has (docs/operator.md).
inline constexpr int kMaxEpilogueSteps = 4;

// Floats per cache line: phase planes of the CPU kernel's padded copy start on one.
inline constexpr int64_t kPlaneAlignment = 16;

// Reads one node's attributes. Each accessor returns nullopt when the attribute is absent and
// throws InvalidArgument when it is present with another type.
class AttributeSource {
 public:
  virtual ~AttributeSource() = default;
  virtual std::optional<int64_t> Int(const char* name) const = 0;
  virtual std::optional<std::vector<int64_t>> Ints(const char* name) const = 0;
  virtual std::optional<std::vector<float>> Floats(const char* name) const = 0;
  virtual std::optional<std::string> String(const char* name) const = 0;
};

// One step of the epilogue.
struct EpilogueStep {
  Activation kind = Activation::kNone;
  float alpha = 0.0f;  // LeakyRelu alpha, HardSigmoid alpha, Clip min, QuickGelu alpha
  float beta = 0.0f;   // HardSigmoid beta, Clip max
};

// The epilogue applied after bias, its steps in order: y = f_n(...f_1(conv + b)). Trivially
// copyable (CUDA kernels take it by value); PRelu's per-channel slopes live in ConvAttributes
// and reach the formulas as one `slope` per output channel.
struct Epilogue {
  EpilogueStep steps[kMaxEpilogueSteps];
  int count = 0;
  bool empty() const { return count == 0; }
};

// Validated attributes. Spatial vectors have kernel_shape.size() entries; pads has twice that
// (all begins, then all ends), as in ONNX.
struct ConvAttributes {
  std::vector<int64_t> kernel_shape;
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;
  std::vector<int64_t> pads;
  int64_t group = 1;
  // C/group of the dense weight, or -1 when the node does not say (models written before the
  // attribute existed): then only the CSR's columns bound X's channels.
  int64_t in_channels_per_group = -1;
  AutoPad auto_pad = AutoPad::kNotSet;
  Epilogue epilogue;
  // PRelu's slopes (attribute activation_slopes): one per output channel, or one for all; empty
  // without a PRelu step.
  std::vector<float> activation_slopes;
  // X's shape as the rewriter resolved it (attribute input_shape_hint), or empty: where the
  // model leaves X's sizes symbolic, the CPU kernel prepares for this shape at creation.
  std::vector<int64_t> input_shape_hint;

  int spatial_rank() const { return static_cast<int>(kernel_shape.size()); }
  // group x in_channels_per_group: the channels X must have, or -1 when the node does not say.
  int64_t in_channels() const;
  int64_t kernel_volume() const;  // prod(kernel_shape)
  // PRelu's slope for output channel m (0 without a PRelu step).
  float slope(int64_t m) const {
    if (activation_slopes.empty()) return 0.0f;
    return activation_slopes[activation_slopes.size() == 1 ? 0 : static_cast<size_t>(m)];
  }
  // Throws InvalidArgument unless activation_slopes fits M output channels.
  void CheckOutputChannels(int64_t out_channels) const;
  // One slope per output channel (empty without a PRelu step), for kernels that index by channel.
  std::vector<float> ChannelSlopes(int64_t out_channels) const;

  static ConvAttributes Parse(const AttributeSource& source);

  // The shape a kernel prepares for at creation: `declared` (X's type in the model; -1 for an
  // unknown size, empty for an unknown rank) where every size but the batch is known, else
  // input_shape_hint, else empty. An unknown batch is taken as 1: nothing prepared depends on
  // it. Throws InvalidArgument when the hint contradicts a declared size.
  std::vector<int64_t> PlannedInputShape(std::vector<int64_t> declared) const;
};

// One spatial axis after padding is resolved.
struct AxisGeometry {
  int64_t in = 1, out = 1, kernel = 1, stride = 1, dilation = 1, pad_begin = 0, pad_end = 0;
  int64_t padded() const { return in + pad_begin + pad_end; }
};

// Output size and pads of one axis, exactly as ONNX Conv defines them; throws when the
// (dilated) kernel does not fit in the padded input.
AxisGeometry ResolveAxis(const ConvAttributes& attrs, int axis, int64_t in);

// The CPU kernel's view of the input (sparse_conv_cpu.cc): padded and split into one phase per
// stride residue on each axis, so that every nonzero reads contiguous elements.
struct PhaseLayout {
  std::array<int64_t, kMaxSpatialRank> stride{1, 1, 1};  // min(stride, padded size): same outputs
  // Elements per phase along each axis: ceil(padded / stride), the last axis rounded up to
  // whole cache lines in a copy where that is cheap (ResolveGeometry).
  std::array<int64_t, kMaxSpatialRank> extent{1, 1, 1};
  int64_t phases = 1;                                     // prod(stride)
  int64_t phase_plane = 1;  // prod(extent), rounded up to kPlaneAlignment in a copy and for 1x1 (ResolveGeometry)
  int64_t channel_stride = 1;                             // phases * phase_plane
  bool copy = false;  // false when X itself has this layout (no padding, unit strides; 1x1: aligned planes)
};

// Everything one call needs, spatial axes right-aligned into 3 (leading axes of size 1).
struct ConvGeometry {
  int64_t batch = 0, in_channels = 0, out_channels = 0, group = 1;
  int64_t in_channels_per_group = 0, out_channels_per_group = 0;
  int spatial_rank = 0;
  std::array<AxisGeometry, kMaxSpatialRank> axes;
  bool has_padding = false;
  // Element counts, overflow-checked.
  int64_t in_image = 0;      // C * prod(in)
  int64_t padded_plane = 0;  // prod(padded), one channel
  int64_t out_plane = 0;     // prod(out), one channel
  int64_t out_elements = 0;  // N * M * prod(out)
  PhaseLayout layout;

  std::vector<int64_t> OutputShape() const;
};

// Validates X's shape against the attributes (in_channels_per_group included) and M output
// channels; throws InvalidArgument.
ConvGeometry ResolveGeometry(const ConvAttributes& attrs, const std::vector<int64_t>& x_shape,
                             int64_t out_channels);

}  // namespace onnx_sparsify
