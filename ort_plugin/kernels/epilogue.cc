#include "epilogue.h"

#include <cmath>
#include <limits>
#include <string>

#include "conv_params.h"
#include "errors.h"

namespace onnx_sparsify {
namespace {

struct StepSpec {
  const char* name;
  Activation kind;
  size_t num_params;
  double default_alpha, default_beta;  // as docs/operator.md writes them; the kernel takes them as float
};

// Every step SparseConv knows, with its parameters' defaults (docs/operator.md).
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr StepSpec kStepSpecs[] = {
    {"Relu", Activation::kRelu, 0, 0.0, 0.0},
    {"LeakyRelu", Activation::kLeakyRelu, 1, 0.01, 0.0},
    {"Clip", Activation::kClip, 2, -kInf, kInf},
    {"Sigmoid", Activation::kSigmoid, 0, 0.0, 0.0},
    {"HardSigmoid", Activation::kHardSigmoid, 2, 0.2, 0.5},
    {"HardSwish", Activation::kHardSwish, 0, 0.0, 0.0},
    {"SiLU", Activation::kSiLU, 0, 0.0, 0.0},
    {"Tanh", Activation::kTanh, 0, 0.0, 0.0},
    {"Gelu", Activation::kGelu, 0, 0.0, 0.0},
    {"GeluTanh", Activation::kGeluTanh, 0, 0.0, 0.0},
    {"QuickGelu", Activation::kQuickGelu, 1, 1.702, 0.0},
    {"Mish", Activation::kMish, 0, 0.0, 0.0},
    {"PRelu", Activation::kPRelu, 0, 0.0, 0.0},
};

const StepSpec& FindStep(const std::string& name) {
  for (const StepSpec& s : kStepSpecs) {
    if (name == s.name) return s;
  }
  std::string known;
  for (const StepSpec& s : kStepSpecs) known += std::string(known.empty() ? "" : ", ") + s.name;
  throw InvalidArgument("unknown activation '" + name + "' (expected none or steps among " + known +
                        ", separated by commas)");
}

}  // namespace

std::vector<EpilogueStepInfo> EpilogueSteps() {
  std::vector<EpilogueStepInfo> steps;
  for (const StepSpec& s : kStepSpecs) {
    steps.push_back({s.name, static_cast<int>(s.num_params), {s.default_alpha, s.default_beta}});
  }
  return steps;
}

// `activation` names the steps in order, separated by commas ("LeakyRelu,Clip"); empty or
// "none" for none. `activation_params` is empty (every step takes its defaults) or holds every
// step's parameters in order.
Epilogue ParseEpilogue(const AttributeSource& src, std::vector<float>* slopes) {
  const std::string names = src.String("activation").value_or("");
  const std::vector<float> params = src.Floats("activation_params").value_or(std::vector<float>{});
  *slopes = src.Floats("activation_slopes").value_or(std::vector<float>{});
  for (float p : params) {
    if (std::isnan(p)) throw InvalidArgument("activation_params contains NaN");
  }
  std::vector<const StepSpec*> specs;
  if (!names.empty() && names != "none") {
    for (size_t begin = 0;;) {
      const size_t comma = names.find(',', begin);
      specs.push_back(&FindStep(names.substr(begin, comma == std::string::npos ? comma : comma - begin)));
      if (comma == std::string::npos) break;
      begin = comma + 1;
    }
  }
  if (specs.size() > kMaxEpilogueSteps) {
    throw InvalidArgument("activation '" + names + "' has " + std::to_string(specs.size()) +
                          " steps; at most " + std::to_string(kMaxEpilogueSteps) + " are supported");
  }
  size_t wanted = 0, prelus = 0;
  for (const StepSpec* spec : specs) {
    wanted += spec->num_params;
    prelus += spec->kind == Activation::kPRelu;
  }
  if (!params.empty() && params.size() != wanted) {
    throw InvalidArgument("activation '" + names + "' takes " + std::to_string(wanted) +
                          " activation_params, got " + std::to_string(params.size()));
  }
  if (prelus > 1) throw InvalidArgument("activation '" + names + "' has more than one PRelu step");
  if (prelus == 1 && slopes->empty()) {
    throw InvalidArgument("activation '" + names + "' has a PRelu step but no activation_slopes");
  }
  if (prelus == 0 && !slopes->empty()) {
    throw InvalidArgument("activation_slopes is set but activation '" + names + "' has no PRelu step");
  }
  for (float s : *slopes) {
    if (std::isnan(s)) throw InvalidArgument("activation_slopes contains NaN");
  }
  Epilogue e;
  size_t next = 0;
  for (const StepSpec* spec : specs) {
    EpilogueStep& step = e.steps[e.count++];
    step = {spec->kind, static_cast<float>(spec->default_alpha), static_cast<float>(spec->default_beta)};
    if (params.empty()) continue;
    if (spec->num_params >= 1) step.alpha = params[next];
    if (spec->num_params >= 2) step.beta = params[next + 1];
    next += spec->num_params;
  }
  return e;
}

}  // namespace onnx_sparsify
