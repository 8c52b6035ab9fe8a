#include "conv_params.h"

#include <algorithm>
#include <string>

#include "errors.h"

namespace onnx_sparsify {
namespace {

std::string Join(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::vector<int64_t> SpatialInts(const AttributeSource& src, const char* name, size_t expected,
                                 int64_t fallback, int64_t min_value) {
  auto v = src.Ints(name);
  if (!v) return std::vector<int64_t>(expected, fallback);
  if (v->size() != expected) {
    throw InvalidArgument(std::string("attribute '") + name + "' has " + std::to_string(v->size()) +
                          " values " + Join(*v) + "; kernel_shape implies " + std::to_string(expected));
  }
  for (int64_t x : *v) {
    if (x < min_value || x > kMaxAttributeValue) {
      throw InvalidArgument(std::string("attribute '") + name + "' value " + std::to_string(x) +
                            " is out of range [" + std::to_string(min_value) + ", " +
                            std::to_string(kMaxAttributeValue) + "]");
    }
  }
  return *v;
}

}  // namespace

int64_t ConvAttributes::kernel_volume() const {
  int64_t v = 1;
  for (int64_t k : kernel_shape) v = CheckedMul(v, k, "kernel_shape");
  return v;
}

int64_t ConvAttributes::in_channels() const {
  return in_channels_per_group > 0 ? CheckedMul(in_channels_per_group, group, "group x in_channels_per_group") : -1;
}

void ConvAttributes::CheckOutputChannels(int64_t out_channels) const {
  const auto n = static_cast<int64_t>(activation_slopes.size());
  if (n > 1 && n != out_channels) {
    throw InvalidArgument("activation_slopes has " + std::to_string(n) + " values; the weight has " +
                          std::to_string(out_channels) + " output channels (give one slope per channel, or one)");
  }
}

std::vector<float> ConvAttributes::ChannelSlopes(int64_t out_channels) const {
  CheckOutputChannels(out_channels);
  if (activation_slopes.size() == 1) return std::vector<float>(static_cast<size_t>(out_channels), activation_slopes[0]);
  return activation_slopes;
}

ConvAttributes ConvAttributes::Parse(const AttributeSource& src) {
  ConvAttributes a;
  auto kernel = src.Ints("kernel_shape");
  if (!kernel) throw InvalidArgument("attribute 'kernel_shape' is required (the dense weight's shape is gone)");
  const size_t k = kernel->size();
  if (k < 1 || k > kMaxSpatialRank) {
    throw InvalidArgument("kernel_shape " + Join(*kernel) + " must have 1, 2 or 3 values");
  }
  a.kernel_shape = SpatialInts(src, "kernel_shape", k, 1, 1);
  a.strides = SpatialInts(src, "strides", k, 1, 1);
  a.dilations = SpatialInts(src, "dilations", k, 1, 1);
  a.pads = SpatialInts(src, "pads", 2 * k, 0, 0);
  for (size_t i = 0; i < k; ++i) {
    // Kernels keep positions inside the dilated kernel in 32 bits (cpu_weights.h).
    const int64_t extent = (a.kernel_shape[i] - 1) * a.dilations[i];  // < 2^48 by the bounds above
    if (extent >= kMaxDilatedExtent) {
      throw InvalidArgument("dilated kernel extent " + std::to_string(extent) + " on axis " + std::to_string(i) +
                            " exceeds 2^31");
    }
  }
  a.group = src.Int("group").value_or(1);
  if (a.group < 1 || a.group > kMaxAttributeValue) {
    throw InvalidArgument("attribute 'group' must be at least 1, got " + std::to_string(a.group));
  }
  if (auto c = src.Int("in_channels_per_group")) {
    if (*c < 1 || *c > kMaxAttributeValue) {
      throw InvalidArgument("attribute 'in_channels_per_group' value " + std::to_string(*c) + " is out of range [1, " +
                            std::to_string(kMaxAttributeValue) + "]");
    }
    a.in_channels_per_group = *c;
  }
  const std::string auto_pad = src.String("auto_pad").value_or("NOTSET");
  if (auto_pad == "NOTSET") {
    a.auto_pad = AutoPad::kNotSet;
  } else if (auto_pad == "SAME_UPPER") {
    a.auto_pad = AutoPad::kSameUpper;
  } else if (auto_pad == "SAME_LOWER") {
    a.auto_pad = AutoPad::kSameLower;
  } else if (auto_pad == "VALID") {
    a.auto_pad = AutoPad::kValid;
  } else {
    throw InvalidArgument("attribute 'auto_pad' is '" + auto_pad +
                          "' (expected NOTSET, SAME_UPPER, SAME_LOWER or VALID)");
  }
  if (a.auto_pad != AutoPad::kNotSet && src.Ints("pads")) {
    throw InvalidArgument("attributes 'auto_pad' and 'pads' are both set; ONNX Conv allows only one");
  }
  a.epilogue = ParseEpilogue(src, &a.activation_slopes);
  if (auto hint = src.Ints("input_shape_hint")) {
    if (hint->size() != k + 2) {
      throw InvalidArgument("attribute 'input_shape_hint' " + Join(*hint) + " must have " + std::to_string(k + 2) +
                            " values (N, C and the spatial sizes)");
    }
    for (int64_t d : *hint) {
      if (d < 1 || d > kMaxAttributeValue) {
        throw InvalidArgument("attribute 'input_shape_hint' " + Join(*hint) + " has a value out of range [1, " +
                              std::to_string(kMaxAttributeValue) + "]");
      }
    }
    a.input_shape_hint = *hint;
  }
  return a;
}

std::vector<int64_t> ConvAttributes::PlannedInputShape(std::vector<int64_t> declared) const {
  if (!input_shape_hint.empty()) {
    bool agrees = declared.empty() || declared.size() == input_shape_hint.size();
    for (size_t i = 0; agrees && i < declared.size(); ++i) {
      agrees = declared[i] < 0 || declared[i] == input_shape_hint[i];
    }
    if (!agrees) {
      throw InvalidArgument("attribute 'input_shape_hint' " + Join(input_shape_hint) +
                            " contradicts X's declared shape " + Join(declared));
    }
    if (in_channels() > 0 && input_shape_hint[1] != in_channels()) {
      throw InvalidArgument("attribute 'input_shape_hint' " + Join(input_shape_hint) + " has " +
                            std::to_string(input_shape_hint[1]) + " channels but group x in_channels_per_group is " +
                            std::to_string(in_channels()));
    }
  }
  if (!declared.empty() && declared[0] < 0) declared[0] = 1;
  const auto known = [](int64_t d) { return d >= 0; };
  if (!declared.empty() && std::all_of(declared.begin(), declared.end(), known)) return declared;
  if (input_shape_hint.empty()) return {};
  std::vector<int64_t> planned = input_shape_hint;
  planned[0] = 1;
  return planned;
}

bool ConvAttributes::PlansFromHint(const std::vector<int64_t>& declared) const {
  if (input_shape_hint.empty()) return false;
  return declared.empty() || std::any_of(declared.begin() + 1, declared.end(), [](int64_t d) { return d < 0; });
}

AxisGeometry ResolveAxis(const ConvAttributes& attrs, int axis, int64_t in) {
  const int k = attrs.spatial_rank();
  AxisGeometry g;
  g.in = in;
  g.kernel = attrs.kernel_shape[axis];
  g.stride = attrs.strides[axis];
  g.dilation = attrs.dilations[axis];
  const int64_t dilated = (g.kernel - 1) * g.dilation + 1;  // < 2^48 by the attribute bounds
  const std::string what = "spatial axis " + std::to_string(axis);
  switch (attrs.auto_pad) {
    case AutoPad::kNotSet:
      g.pad_begin = attrs.pads[axis];
      g.pad_end = attrs.pads[axis + k];
      break;
    case AutoPad::kValid:
      break;
    case AutoPad::kSameUpper:
    case AutoPad::kSameLower: {
      // ceil(in / stride) outputs. Where a stride exceeds the (dilated) kernel, ONNX's total
      // padding is negative and SparseConv computes what ONNX Runtime's Conv computes: the head
      // crops the input by (-total - 1) / 2 (SAME_UPPER) or (-total - 2) / 2 (SAME_LOWER), rounded
      // toward zero (measured on ORT 1.21 to 1.31; tests/test_conformance.py compares them).
      // With dilations, which ORT's Conv refuses under SAME, SparseConv follows ONNX
      // (onnx.reference) and clamps the total at 0.
      const int64_t out = in / g.stride + (in % g.stride != 0);
      int64_t total = CheckedAdd(CheckedMul(out - 1, g.stride, what.c_str()), dilated - in, what.c_str());
      if (g.dilation != 1) total = std::max<int64_t>(0, total);
      const bool upper = attrs.auto_pad == AutoPad::kSameUpper;
      if (total >= 0) {
        g.pad_begin = upper ? total / 2 : (total + 1) / 2;
      } else {
        g.pad_begin = upper ? (total + 1) / 2 : (total + 2) / 2;
      }
      g.pad_end = total - g.pad_begin;
      break;
    }
  }
  const int64_t padded = CheckedAdd(CheckedAdd(in, g.pad_begin, what.c_str()), g.pad_end, what.c_str());
  if (padded < dilated) {
    throw InvalidArgument(what + ": dilated kernel of size " + std::to_string(dilated) +
                          " is larger than the padded input of size " + std::to_string(padded));
  }
  g.out = (padded - dilated) / g.stride + 1;
  return g;
}

ConvGeometry ResolveGeometry(const ConvAttributes& attrs, const std::vector<int64_t>& x_shape,
                             int64_t out_channels) {
  const int k = attrs.spatial_rank();
  if (static_cast<int>(x_shape.size()) != k + 2) {
    throw InvalidArgument("input X has rank " + std::to_string(x_shape.size()) + " but kernel_shape " +
                          Join(attrs.kernel_shape) + " needs rank " + std::to_string(k + 2));
  }
  ConvGeometry g;
  g.batch = x_shape[0];
  g.in_channels = x_shape[1];
  g.out_channels = out_channels;
  g.group = attrs.group;
  attrs.CheckOutputChannels(out_channels);
  g.spatial_rank = k;
  if (g.batch < 0) throw InvalidArgument("input X has a negative batch size");
  if (g.in_channels < 1) throw InvalidArgument("input X has no channels");
  if (attrs.in_channels_per_group > 0 && g.in_channels != attrs.in_channels()) {
    throw InvalidArgument("input X has " + std::to_string(g.in_channels) + " channels but the weight expects " +
                          std::to_string(attrs.in_channels()) + " (group " +
                          std::to_string(g.group) + " x in_channels_per_group " +
                          std::to_string(attrs.in_channels_per_group) + ")");
  }
  if (g.in_channels % g.group != 0) {
    throw InvalidArgument("input channels " + std::to_string(g.in_channels) + " are not divisible by group " +
                          std::to_string(g.group));
  }
  if (g.out_channels % g.group != 0) {
    throw InvalidArgument("output channels " + std::to_string(g.out_channels) + " are not divisible by group " +
                          std::to_string(g.group));
  }
  g.in_channels_per_group = g.in_channels / g.group;
  g.out_channels_per_group = g.out_channels / g.group;
  int64_t in_plane = 1;
  g.padded_plane = 1;
  g.out_plane = 1;
  for (int i = 0; i < k; ++i) {
    const int64_t in = x_shape[2 + i];
    if (in < 1) throw InvalidArgument("input X has spatial size " + std::to_string(in) + " on axis " + std::to_string(i));
    AxisGeometry& ax = g.axes[kMaxSpatialRank - k + i];
    ax = ResolveAxis(attrs, i, in);
    g.has_padding = g.has_padding || ax.pad_begin != 0 || ax.pad_end != 0;
    in_plane = CheckedMul(in_plane, in, "input X");
    g.padded_plane = CheckedMul(g.padded_plane, ax.padded(), "padded input");
    g.out_plane = CheckedMul(g.out_plane, ax.out, "output Y");
  }
  g.layout = ResolvePhaseLayout(g, attrs.kernel_volume());
  g.in_image = CheckedMul(g.in_channels, in_plane, "input X");
  CheckedMul(g.batch, g.in_image, "input X");
  CheckedMul(CheckedMul(g.batch, g.in_channels, "padded input"), g.padded_plane, "padded input");
  g.out_elements = CheckedMul(CheckedMul(g.batch, g.out_channels, "output Y"), g.out_plane, "output Y");
  return g;
}

std::vector<int64_t> ConvGeometry::OutputShape() const {
  std::vector<int64_t> shape = {batch, out_channels};
  for (int i = kMaxSpatialRank - spatial_rank; i < kMaxSpatialRank; ++i) shape.push_back(axes[i].out);
  return shape;
}

}  // namespace onnx_sparsify
