#include "server/core/state_dict.h"

#include <cstdint>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/core/safetensors.h"
#include "server/core/weights.h"

namespace reluserve {
namespace {

// The parameters of one module as the header names them.
struct ModuleTensors {
  const SafetensorsTensor* weight = nullptr;
  const SafetensorsTensor* bias = nullptr;
};

// A module index as PyTorch writes it: decimal, no sign, no leading zero.
// At most 9 digits, so that it fits in an int with room to spare.
bool ParseModuleIndex(absl::string_view text, int* index) {
  if (text.empty() || text.size() > 9) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(text, index);
}

std::string Source(const std::string& path, const std::string& prefix) {
  return prefix.empty()
             ? absl::StrCat("file ", path)
             : absl::StrCat("file ", path, " (prefix '", prefix, "')");
}

std::string UnderPrefix(const std::string& prefix) {
  return prefix.empty() ? "" : absl::StrCat(" under prefix '", prefix, "'");
}

absl::Status NotALinearParameter(const SafetensorsFile& file,
                                 const std::string& name,
                                 const std::string& prefix) {
  std::string problem = absl::StrCat(
      "tensor '", name, "'", UnderPrefix(prefix),
      " is not a Linear parameter (expected 'weight' and 'bias' of one "
      "nn.Linear, or '<i>.weight' and '<i>.bias' of an nn.Sequential's "
      "modules); only Linear layers and ReLUs can be served");
  if (!prefix.empty() && prefix.back() != '.') {
    absl::StrAppend(&problem, " (a prefix ends in '.', e.g. '", prefix, ".')");
  } else if (prefix.empty() && absl::StrContains(name, '.')) {
    absl::StrAppend(&problem, " (a prefix such as 'net.' selects a module)");
  }
  return file.Invalid(problem);
}

// Checks a parameter's dtype and shape; a weight of the wrong rank gets a
// hint, since that is how a non-Linear module (e.g. a norm) shows up.
absl::Status CheckParameter(const SafetensorsFile& file,
                            const SafetensorsTensor& tensor, size_t rank) {
  if (tensor.dtype == "F32" && tensor.elements() != 0 &&
      tensor.shape.size() != rank) {
    return file.Invalid(absl::StrCat(
        "tensor '", tensor.name, "' has shape ", tensor.ShapeText(),
        " of rank ", tensor.shape.size(), ", expected rank ", rank, " (a ",
        rank == 2 ? "Linear weight [out_features, in_features]"
                  : "Linear bias [out_features]",
        "); only Linear layers and ReLUs can be served"));
  }
  return file.CheckF32(tensor, rank);
}

// Finds the modules under `prefix`: key -1 for a single nn.Linear, else the
// module index.
absl::StatusOr<std::map<int, ModuleTensors>> FindModules(
    const SafetensorsFile& file, const std::string& prefix) {
  std::map<int, ModuleTensors> modules;
  for (const SafetensorsTensor& tensor : file.tensors()) {
    if (!absl::StartsWith(tensor.name, prefix)) continue;
    const absl::string_view suffix =
        absl::string_view(tensor.name).substr(prefix.size());
    int index = -1;
    absl::string_view param = suffix;
    if (suffix != "weight" && suffix != "bias") {
      const size_t dot = suffix.find('.');
      if (dot == absl::string_view::npos ||
          !ParseModuleIndex(suffix.substr(0, dot), &index)) {
        return NotALinearParameter(file, tensor.name, prefix);
      }
      param = suffix.substr(dot + 1);
      if (param != "weight" && param != "bias") {
        return NotALinearParameter(file, tensor.name, prefix);
      }
    }
    ModuleTensors& module = modules[index];
    (param == "weight" ? module.weight : module.bias) = &tensor;
  }
  if (modules.empty()) {
    return file.Invalid(
        prefix.empty()
            ? absl::StrCat("no Linear parameters (", file.DescribeNames(), ")")
            : absl::StrCat("no tensor under prefix '", prefix, "' (",
                           file.DescribeNames(), ")"));
  }
  if (modules.size() > 1 && modules.begin()->first == -1) {
    const ModuleTensors& single = modules.begin()->second;
    const ModuleTensors& first = std::next(modules.begin())->second;
    const SafetensorsTensor* a = single.weight ? single.weight : single.bias;
    const SafetensorsTensor* b = first.weight ? first.weight : first.bias;
    return file.Invalid(
        absl::StrCat("both '", a->name, "' (of a single nn.Linear) and '",
                     b->name, "' (of an nn.Sequential)", UnderPrefix(prefix),
                     "; a prefix selects one module"));
  }
  for (const auto& [index, module] : modules) {
    if (module.weight == nullptr) {
      const std::string& bias = module.bias->name;
      return file.Invalid(absl::StrCat(
          "tensor '", bias, "' has no '",
          bias.substr(0, bias.size() - std::string("bias").size()),
          "weight' (a Linear has a weight; only Linear layers and ReLUs can "
          "be served)"));
    }
  }
  return modules;
}

}  // namespace

absl::StatusOr<LinearStack> LoadLinearStack(const std::string& path,
                                            const std::string& prefix) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  absl::StatusOr<std::map<int, ModuleTensors>> modules =
      FindModules(*file, prefix);
  if (!modules.ok()) return modules.status();

  // Every check before any data is read.
  std::vector<const SafetensorsTensor*> used;
  const SafetensorsTensor* previous = nullptr;
  for (const auto& [index, module] : *modules) {
    const SafetensorsTensor& w = *module.weight;
    if (absl::Status ok = CheckParameter(*file, w, 2); !ok.ok()) return ok;
    used.push_back(&w);
    if (module.bias != nullptr) {
      const SafetensorsTensor& b = *module.bias;
      if (absl::Status ok = CheckParameter(*file, b, 1); !ok.ok()) return ok;
      if (b.shape[0] != w.shape[0]) {
        return file->Invalid(absl::StrCat(
            "shape mismatch: '", b.name, "' has length ", b.shape[0], " but '",
            w.name, "' has ", w.shape[0], " rows"));
      }
      used.push_back(&b);
    }
    if (previous != nullptr && previous->shape[0] != w.shape[1]) {
      return file->Invalid(
          absl::StrCat("layers do not chain: '", previous->name, "' has shape ",
                       previous->ShapeText(), " (out_features ",
                       previous->shape[0], ") but the next layer's '", w.name,
                       "' has shape ", w.ShapeText(), " (in_features ",
                       w.shape[1], ", expected ", previous->shape[0], ")"));
    }
    previous = &w;
  }
  if (absl::Status ok = file->CheckDisjoint(used); !ok.ok()) return ok;

  LinearStack stack;
  stack.source = Source(path, prefix);
  for (const auto& [index, module] : *modules) {
    NamedLinear layer;
    const std::string stem = index < 0 ? "" : absl::StrCat(index, ".");
    layer.module = index < 0 ? "" : absl::StrCat(index);
    layer.weight_name = stem + "weight";
    LinearWeights& weights = layer.weights;
    // Both fit in int64: each is at most the file's size / 4.
    weights.out_features = static_cast<int64_t>(module.weight->shape[0]);
    weights.in_features = static_cast<int64_t>(module.weight->shape[1]);
    absl::StatusOr<std::vector<float>> weight = file->ReadF32(*module.weight);
    if (!weight.ok()) return weight.status();
    weights.weight = *std::move(weight);
    if (module.bias != nullptr) {
      layer.bias_name = stem + "bias";
      absl::StatusOr<std::vector<float>> bias = file->ReadF32(*module.bias);
      if (!bias.ok()) return bias.status();
      weights.bias = *std::move(bias);
    }
    weights.source = index < 0 ? stack.source
                               : absl::StrCat(stack.source, " module ", index);
    stack.layers.push_back(std::move(layer));
  }
  return stack;
}

absl::Status WriteLinearStack(const std::string& path, const LinearStack& stack,
                              const std::string& prefix) {
  std::vector<SafetensorsF32Entry> tensors;
  for (size_t i = 0; i < stack.layers.size(); ++i) {
    const NamedLinear& layer = stack.layers[i];
    const LinearWeights& w = layer.weights;
    const int64_t m = w.out_features;
    const int64_t k = w.in_features;
    const bool sizes_agree =
        m > 0 && k > 0 && w.weight.size() == static_cast<uint64_t>(m) * k &&
        (w.bias.empty() || w.bias.size() == static_cast<uint64_t>(m));
    if (!sizes_agree || layer.weight_name.empty() ||
        layer.bias_name.empty() != w.bias.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weights file ", path, ": refusing to write inconsistent layer ", i,
          " (module '", layer.module, "'): out_features=", m,
          " in_features=", k, " weight.size()=", w.weight.size(),
          " bias.size()=", w.bias.size(), " weight_name='", layer.weight_name,
          "' bias_name='", layer.bias_name, "'"));
    }
    tensors.push_back({prefix + layer.weight_name,
                       {static_cast<uint64_t>(m), static_cast<uint64_t>(k)},
                       w.weight});
    if (!w.bias.empty()) {
      tensors.push_back(
          {prefix + layer.bias_name, {static_cast<uint64_t>(m)}, w.bias});
    }
  }
  return WriteSafetensorsF32(path, tensors);
}

absl::StatusOr<std::vector<bool>> ParseLayerPlan(const std::string& layers,
                                                 const LinearStack& stack) {
  const size_t count = stack.layers.size();
  if (layers.empty()) return std::vector<bool>(count, true);

  const auto refuse = [&layers](absl::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrCat("layers '", layers, "': ", problem));
  };
  std::vector<bool> relu_after;
  std::vector<int> linear_positions;
  bool previous_is_relu = false;
  int position = 0;
  for (absl::string_view item : absl::StrSplit(layers, ',')) {
    item = absl::StripAsciiWhitespace(item);
    const std::string at = absl::StrCat("position ", position, " (0-based)");
    if (item == "linear") {
      relu_after.push_back(false);
      linear_positions.push_back(position);
      previous_is_relu = false;
    } else if (item == "relu") {
      if (relu_after.empty()) {
        return refuse(absl::StrCat(
            at, " is 'relu', expected 'linear': a ReLU follows a Linear"));
      }
      if (previous_is_relu) {
        return refuse(absl::StrCat(
            at, " is a second 'relu' in a row, expected 'linear'"));
      }
      relu_after.back() = true;
      previous_is_relu = true;
    } else if (item == "dropout" || item == "identity" || item == "flatten") {
      // The identity in model.eval() (Flatten: on [N, F] rows, and x may
      // come in any shape whose trailing dimensions multiply to F).
    } else {
      return refuse(absl::StrCat(
          at, " is '", item,
          "', expected 'linear', 'relu', or a module that is the identity "
          "at inference: 'dropout', 'identity', 'flatten' (lower case)"));
    }
    ++position;
  }
  if (relu_after.size() != count) {
    std::vector<absl::string_view> modules;
    for (const NamedLinear& layer : stack.layers) {
      if (!layer.module.empty()) modules.push_back(layer.module);
    }
    return refuse(absl::StrCat(
        "has ", relu_after.size(), " 'linear' entries, expected ", count,
        ": the model has ", count, " Linear layer", count == 1 ? "" : "s",
        modules.empty()
            ? ""
            : absl::StrCat(" (modules ", absl::StrJoin(modules, ", "), ")")));
  }
  if (count == 0 || stack.layers[0].module.empty()) return relu_after;

  // An nn.Sequential: the list is its module list.
  std::vector<int> modules;
  for (size_t i = 0; i < count; ++i) {
    int index = 0;
    if (!ParseModuleIndex(stack.layers[i].module, &index)) {
      return refuse(absl::StrCat("layer ", i, " has module '",
                                 stack.layers[i].module,
                                 "', expected a module index"));
    }
    modules.push_back(index);
  }
  if (linear_positions == modules) return relu_after;

  std::string problem = absl::StrCat(
      "has 'linear' at positions ", absl::StrJoin(linear_positions, ", "),
      ", expected the positions of the nn.Sequential's Linear modules, ",
      absl::StrJoin(modules, ", "), " (the list is the Sequential's modules)");
  // A list that fits exists only if every gap is one ReLU.
  std::vector<std::string> example;
  bool describable = modules[0] == 0;
  for (size_t i = 0; i < count && describable; ++i) {
    if (i > 0) {
      const int gap = modules[i] - modules[i - 1];
      describable = gap == 1 || gap == 2;
      if (gap == 2) example.push_back("relu");
    }
    example.push_back("linear");
  }
  absl::StrAppend(
      &problem, describable
                    ? absl::StrCat(", e.g. '", absl::StrJoin(example, ","), "'")
                    : std::string("; no list describes these modules (one "
                                  "'relu' at most between Linears)"));
  return refuse(problem);
}

}  // namespace reluserve
