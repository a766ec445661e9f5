#ifndef RELUSERVE_SERVER_CORE_SEQUENTIAL_MODEL_H_
#define RELUSERVE_SERVER_CORE_SEQUENTIAL_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/core/linear_layer.h"
#include "server/core/model.h"
#include "server/core/weights.h"

namespace reluserve {

// Tensor names of the Linear(+ReLU) model contract (docs/api.md): the one
// place outside a model's signature that spells them.
inline constexpr char kInputX[] = "x";
inline constexpr char kInputGradY[] = "grad_y";
inline constexpr char kOutputY[] = "y";
inline constexpr char kOutputGradX[] = "grad_x";
// A parameter's gradient is named "grad_" + the parameter's name.
inline constexpr char kGradientPrefix[] = "grad_";

// One Linear of a stack, as the state dict names it.
struct SequentialLayerSpec {
  LinearWeights weights;  // an empty bias: nn.Linear(bias=False)
  bool relu = true;       // a ReLU follows
  // The module index in an nn.Sequential ("2"), "" for a lone nn.Linear.
  std::string module;
  std::string weight_name = "weight";  // "2.weight"
  std::string bias_name = "bias";      // "2.bias"; unused without a bias
};

struct SequentialModelOptions {
  int intra_op_threads = 1;
  size_t max_cached_batch_sizes = 64;
  // False: an inference-only model, without grad_y and gradients.
  bool backward = true;
};

// A stack of Linear layers, each optionally followed by a ReLU: PyTorch's
// nn.Sequential(Linear, ReLU, Linear, …), or one nn.Linear (+ReLU).
//
// Signature: x [-1, K] (reshapeable, FP32 or BF16) and, with backward,
// optional grad_y [-1, M_last]; outputs y [-1, M_last] and, with backward,
// grad_x (x's shape) and grad_<parameter> for every parameter in layer
// order, weight before bias, each needing grad_y.
//
// Forward runs each layer on oneDNN into per-thread workspaces (only the
// outputs asked for are the caller's buffers); backward chains every
// layer's LinearLayer::Backward from the last to the first layer needed.
// BF16 inputs: the first layer runs oneDNN's bf16 kernels (its upstream
// gradient rounded to BF16, as mixed-precision training does); later layers
// run in FP32 on FP32 activations.
//
// Thread safety: immutable after Create(); Run may be called concurrently.
class SequentialModel final : public Model {
 public:
  // Refuses (InvalidArgument) no layers, or shapes that do not chain,
  // naming both layers.
  static absl::StatusOr<std::unique_ptr<SequentialModel>> Create(
      std::vector<SequentialLayerSpec> layers,
      const SequentialModelOptions& options = {});

  const ModelSignature& signature() const override { return signature_; }
  absl::Status Run(const ModelRun& run) const override;
  const std::vector<ReluLayer>& relu_layers() const override {
    return relu_layers_;
  }

  int64_t in_features() const { return layers_.front()->in_features(); }
  int64_t out_features() const { return layers_.back()->out_features(); }
  size_t depth() const { return layers_.size(); }
  const LinearLayer& layer(size_t i) const { return *layers_[i]; }
  // For the start-up log, e.g. "3072 -> 100 relu -> 10".
  std::string Describe() const;

 private:
  SequentialModel() = default;

  // Output indices of layer i's parameter gradients (-1: none).
  struct GradientSlots {
    int weight = -1;
    int bias = -1;
  };

  absl::Status RunBackward(const ModelRun& run,
                           const std::vector<const float*>& activations) const;

  std::vector<std::unique_ptr<LinearLayer>> layers_;
  std::vector<int> relu_index_;  // per layer: into relu_layers_, or -1
  std::vector<ReluLayer> relu_layers_;
  std::vector<GradientSlots> gradient_slots_;
  ModelSignature signature_;
  int grad_y_input_ = -1, y_output_ = -1, grad_x_output_ = -1;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_CORE_SEQUENTIAL_MODEL_H_
