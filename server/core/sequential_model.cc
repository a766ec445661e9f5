#include "server/core/sequential_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/bfloat16.h"
#include "server/core/onednn_execution.h"

namespace reluserve {
namespace {

using onednn::Grown;

// Per-thread buffers for what passes between layers, reused across calls
// (and across models: a thread runs one model at a time).
struct StackWorkspace {
  std::vector<std::vector<float>> activations;  // per layer
  std::vector<float> gradient[2];               // ping-pong between layers
  std::vector<float> grad_y_fp32;
  std::vector<uint16_t> gradient_bf16;
};

StackWorkspace& LocalWorkspace() {
  thread_local StackWorkspace workspace;
  return workspace;
}

std::string LayerName(const SequentialLayerSpec& layer) {
  return layer.module.empty() ? std::string("the Linear")
                              : absl::StrCat("module ", layer.module);
}

}  // namespace

absl::StatusOr<std::unique_ptr<SequentialModel>> SequentialModel::Create(
    std::vector<SequentialLayerSpec> layers,
    const SequentialModelOptions& options) {
  if (layers.empty()) {
    return absl::InvalidArgumentError("a model needs at least one Linear");
  }
  for (size_t i = 1; i < layers.size(); ++i) {
    const LinearWeights& before = layers[i - 1].weights;
    const LinearWeights& after = layers[i].weights;
    if (after.in_features != before.out_features) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layers do not chain: ", LayerName(layers[i - 1]), " (",
          layers[i - 1].weight_name, " [", before.out_features, ", ",
          before.in_features, "]) gives ", before.out_features,
          " features but ", LayerName(layers[i]), " (", layers[i].weight_name,
          " [", after.out_features, ", ", after.in_features, "]) takes ",
          after.in_features));
    }
  }
  std::unique_ptr<SequentialModel> model(new SequentialModel());
  for (const SequentialLayerSpec& spec : layers) {
    LinearLayerOptions layer_options;
    layer_options.relu = spec.relu;
    layer_options.intra_op_threads = options.intra_op_threads;
    layer_options.max_cached_batch_sizes = options.max_cached_batch_sizes;
    absl::StatusOr<std::unique_ptr<LinearLayer>> layer =
        LinearLayer::Create(spec.weights, layer_options);
    if (!layer.ok()) {
      return absl::Status(
          layer.status().code(),
          absl::StrCat(LayerName(spec), ": ", layer.status().message()));
    }
    model->relu_index_.push_back(
        spec.relu ? static_cast<int>(model->relu_layers_.size()) : -1);
    if (spec.relu) {
      model->relu_layers_.push_back(
          {spec.module.empty() ? "0" : spec.module, spec.weights.out_features});
    }
    model->layers_.push_back(*std::move(layer));
  }

  const int64_t k = model->in_features(), m = model->out_features();
  ModelSignature& signature = model->signature_;
  TensorSpec x;
  x.name = kInputX;
  x.shape = {-1, k};
  x.reshapeable = true;
  signature.inputs.push_back(x);
  TensorSpec y;
  y.name = kOutputY;
  y.shape = {-1, m};
  signature.outputs.push_back(y);
  model->y_output_ = 0;
  model->gradient_slots_.resize(layers.size());
  if (options.backward) {
    TensorSpec grad_y;
    grad_y.name = kInputGradY;
    grad_y.shape = {-1, m};
    grad_y.optional = true;
    signature.inputs.push_back(grad_y);
    model->grad_y_input_ = 1;
    const auto add_gradient = [&](std::string name, std::vector<int64_t> shape,
                                  std::string shape_of) {
      TensorSpec gradient;
      gradient.name = std::move(name);
      gradient.shape = std::move(shape);
      gradient.shape_of = std::move(shape_of);
      gradient.needs = kInputGradY;
      signature.outputs.push_back(std::move(gradient));
      return static_cast<int>(signature.outputs.size() - 1);
    };
    model->grad_x_output_ = add_gradient(kOutputGradX, {-1, k}, kInputX);
    for (size_t i = 0; i < layers.size(); ++i) {
      const LinearWeights& w = layers[i].weights;
      model->gradient_slots_[i].weight =
          add_gradient(kGradientPrefix + layers[i].weight_name,
                       {w.out_features, w.in_features}, "");
      if (!w.bias.empty()) {
        model->gradient_slots_[i].bias = add_gradient(
            kGradientPrefix + layers[i].bias_name, {w.out_features}, "");
      }
    }
  }
  return model;
}

std::string SequentialModel::Describe() const {
  std::string text = absl::StrCat(in_features());
  for (const auto& layer : layers_) {
    absl::StrAppend(&text, " -> ", layer->out_features(),
                    layer->relu() ? " relu" : "",
                    layer->has_bias() ? "" : " (no bias)");
  }
  return text;
}

absl::Status SequentialModel::Run(const ModelRun& run) const {
  if (run.inputs.size() != signature_.inputs.size() ||
      run.outputs.size() != signature_.outputs.size() ||
      run.inputs[0] == nullptr || run.batch < 1) {
    return absl::InternalError(
        "model run does not match the model's signature");
  }
  StackWorkspace& workspace = LocalWorkspace();
  const size_t depth = layers_.size();
  if (workspace.activations.size() < depth) {
    workspace.activations.resize(depth);
  }
  const auto rows = static_cast<size_t>(run.batch);
  float* const y_output = run.outputs[static_cast<size_t>(y_output_)];
  std::vector<const float*> activations(depth);
  const void* input = run.inputs[0];
  Precision precision = run.input_precision;
  for (size_t i = 0; i < depth; ++i) {
    const LinearLayer& layer = *layers_[i];
    float* out = (i + 1 == depth && y_output != nullptr)
                     ? y_output
                     : Grown(workspace.activations[i],
                             rows * static_cast<size_t>(layer.out_features()));
    if (absl::Status status = layer.Forward(run.batch, input, precision, out);
        !status.ok()) {
      return status;
    }
    if (run.observer != nullptr && relu_index_[i] >= 0) {
      run.observer->Observe(static_cast<size_t>(relu_index_[i]), out,
                            run.batch);
    }
    activations[i] = out;
    input = out;
    precision = Precision::kFloat32;
  }
  if (grad_y_input_ < 0 ||
      run.inputs[static_cast<size_t>(grad_y_input_)] == nullptr) {
    return absl::OkStatus();
  }
  return RunBackward(run, activations);
}

absl::Status SequentialModel::RunBackward(
    const ModelRun& run, const std::vector<const float*>& activations) const {
  StackWorkspace& workspace = LocalWorkspace();
  const size_t depth = layers_.size();
  const auto rows = static_cast<size_t>(run.batch);
  const auto output = [&](int index) {
    return index < 0 ? nullptr : run.outputs[static_cast<size_t>(index)];
  };
  // The lowest layer whose backward pass anything asked for needs.
  size_t lowest = depth;
  if (output(grad_x_output_) != nullptr) lowest = 0;
  for (size_t i = 0; i < depth && lowest == depth; ++i) {
    if (output(gradient_slots_[i].weight) != nullptr ||
        output(gradient_slots_[i].bias) != nullptr) {
      lowest = i;
    }
  }
  if (lowest == depth) return absl::OkStatus();

  const Precision wire = run.input_precision;
  const void* upstream = run.inputs[static_cast<size_t>(grad_y_input_)];
  // Above the first layer everything is FP32: BF16 → FP32 is exact.
  if (wire == Precision::kBFloat16 && depth > 1) {
    const size_t count = rows * static_cast<size_t>(out_features());
    float* converted = Grown(workspace.grad_y_fp32, count);
    FromBfloat16(static_cast<const uint16_t*>(upstream), converted, count);
    upstream = converted;
  }
  for (size_t i = depth; i-- > lowest;) {
    const LinearLayer& layer = *layers_[i];
    const bool first = i == 0;
    const Precision precision = first ? wire : Precision::kFloat32;
    if (first && wire == Precision::kBFloat16 && depth > 1) {
      // The first layer's bf16 kernels want their upstream gradient in bf16.
      const size_t count = rows * static_cast<size_t>(layer.out_features());
      uint16_t* rounded = Grown(workspace.gradient_bf16, count);
      ToBfloat16(static_cast<const float*>(upstream), rounded, count);
      upstream = rounded;
    }
    GradientOutputs gradients;
    gradients.grad_weight = output(gradient_slots_[i].weight);
    gradients.grad_bias = output(gradient_slots_[i].bias);
    if (first) {
      gradients.grad_x = output(grad_x_output_);
    } else if (i > lowest) {
      gradients.grad_x = Grown(workspace.gradient[i % 2],
                               rows * static_cast<size_t>(layer.in_features()));
    }
    const void* x = first ? run.inputs[0] : activations[i - 1];
    if (absl::Status status = layer.Backward(
            run.batch, x, precision, activations[i], upstream, gradients);
        !status.ok()) {
      return status;
    }
    upstream = gradients.grad_x;
  }
  return absl::OkStatus();
}

}  // namespace reluserve
