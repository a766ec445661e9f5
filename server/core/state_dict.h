#ifndef RELUSERVE_SERVER_CORE_STATE_DICT_H_
#define RELUSERVE_SERVER_CORE_STATE_DICT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/core/weights.h"

namespace reluserve {

// One Linear of a stack, with its parameters' names as the state dict gives
// them, prefix stripped.
struct NamedLinear {
  // "" for a single nn.Linear, else the module index, e.g. "2".
  std::string module;
  std::string weight_name;  // "weight" or "2.weight"
  // "bias" or "2.bias"; empty when the layer has no bias.
  std::string bias_name;
  LinearWeights weights;
};

// The Linear layers of a model, in the order they run.
struct LinearStack {
  std::vector<NamedLinear> layers;  // in module-index order
  std::string source;               // file path and prefix, for logs
};

// Reads a single nn.Linear (`<prefix>weight`, optional `<prefix>bias`) or an
// nn.Sequential (`<prefix><i>.weight`, optional `<prefix><i>.bias`, i = module
// index, in numeric order: 10 after 9) from a safetensors state dict.
// Tensors outside the prefix are ignored; a tensor under the prefix that is
// neither (e.g. `0.running_mean`, a `1.weight` of rank != 2, `3.bias` without
// `3.weight`) is refused, naming it, as is a file mixing the two forms or
// with nothing under the prefix. Every parameter must be F32 with no zero
// dimension, a bias as long as its weight has rows, no two parameters'
// data may overlap, and the shapes must chain (layer i's in_features = layer
// i-1's out_features), else the refusal names both layers' parameters and
// shapes. Failures are InvalidArgument (NotFound for a missing file) naming
// the file, as for LoadSafetensors.
absl::StatusOr<LinearStack> LoadLinearStack(const std::string& path,
                                            const std::string& prefix = "");

// Writes a stack as a state dict (tensor names: `prefix` + the NamedLinear's
// names; no bias tensor when bias_name is empty), for tests and tooling.
// Refuses a layer whose sizes disagree or whose bias_name and bias do not
// both say whether it has a bias, but not layers that fail to chain, so that
// tests can write such files.
absl::Status WriteLinearStack(const std::string& path, const LinearStack& stack,
                              const std::string& prefix = "");

// Where the ReLUs go: relu_after[i] for layer i. Empty `layers`: a ReLU after
// every Linear. Otherwise a comma-separated list of "linear", "relu" and
// modules that are the identity in model.eval() ("dropout", "identity",
// "flatten": skipped), spaces around items allowed, lower case only: it must
// have exactly
// stack.layers.size() "linear" entries, never "relu" first nor two "relu" in
// a row; and for an nn.Sequential stack (module != "") the positions of the
// "linear" entries must equal the layers' module indices (the list IS the
// Sequential's module list, e.g. "linear,relu,linear" needs modules 0 and
// 2). Each refusal is an InvalidArgument saying what was expected and what
// came.
absl::StatusOr<std::vector<bool>> ParseLayerPlan(const std::string& layers,
                                                 const LinearStack& stack);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_CORE_STATE_DICT_H_
