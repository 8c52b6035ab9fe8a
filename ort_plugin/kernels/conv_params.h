// SparseConv's attributes and the convolution geometry they imply for one input shape.
// Knows nothing of ONNX Runtime: adapters supply attributes through AttributeSource.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "contract.h"
#include "epilogue.h"
#include "phase_layout.h"

namespace onnx_sparsify {

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

// Generous bound on any single attribute value (kernel_shape, strides, dilations, pads, group,
// in_channels_per_group, input_shape_hint): keeps every derived product far from overflow while
// allowing any real network. The rewriter reads it through _core (MAX_ATTRIBUTE_VALUE).
inline constexpr int64_t kMaxAttributeValue = int64_t{1} << 24;
// Kernels keep positions inside the dilated kernel, (kernel - 1) x dilation, in 32 bits
// (cpu_weights.h): an extent of this or more is refused (_core.MAX_DILATED_EXTENT).
inline constexpr int64_t kMaxDilatedExtent = int64_t{1} << 31;

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
  // it. Throws InvalidArgument when the hint contradicts a declared size (the batch included)
  // or the channels group x in_channels_per_group.
  std::vector<int64_t> PlannedInputShape(std::vector<int64_t> declared) const;
  // Whether PlannedInputShape(declared) is the hint's shape (the model leaves a size other than
  // the batch unknown): a hint is for speed only, so a kernel that cannot plan for it (a geometry
  // no input could run) ignores it instead of failing.
  bool PlansFromHint(const std::vector<int64_t>& declared) const;
};

// One spatial axis after padding is resolved.
struct AxisGeometry {
  int64_t in = 1, out = 1, kernel = 1, stride = 1, dilation = 1, pad_begin = 0, pad_end = 0;
  int64_t padded() const { return in + pad_begin + pad_end; }
};

// Output size and pads of one axis, exactly as ONNX Conv defines them; throws when the
// (dilated) kernel does not fit in the padded input.
AxisGeometry ResolveAxis(const ConvAttributes& attrs, int axis, int64_t in);

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
