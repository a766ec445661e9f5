#include "server/service/model_signature.h"

#include <algorithm>

namespace reluserve {
namespace {

template <typename Tensor>
void FillDimsWithoutBatch(const TensorSpec& spec, Tensor* tensor) {
  for (size_t i = 0; i < spec.shape.size(); ++i) {
    if (i == 0 && spec.shape[0] == -1) continue;  // the batch dimension
    tensor->add_dims(spec.shape[i]);
  }
}

}  // namespace

ModelSignature SignatureOf(const ModelConfig& model) {
  const int64_t k = model.in_features, m = model.out_features;
  ModelSignature signature;
  signature.inputs = {{kInputX, {-1, k}, false}, {kInputGradY, {-1, m}, true}};
  signature.outputs = {{kOutputY, {-1, m}},
                       {kOutputGradX, {-1, k}},
                       {kOutputGradWeight, {m, k}},
                       {kOutputGradBias, {m}}};
  return signature;
}

void FillModelMetadata(const ModelConfig& model,
                       inference::ModelMetadataResponse* response) {
  response->set_name(model.name);
  response->add_versions(model.version);
  response->set_platform(kPlatform);
  const ModelSignature signature = SignatureOf(model);
  const auto add = [](const TensorSpec& spec, auto* tensors) {
    auto* tensor = tensors->Add();
    tensor->set_name(spec.name);
    tensor->set_datatype(kFp32);
    for (int64_t dim : spec.shape) tensor->add_shape(dim);
  };
  for (const TensorSpec& spec : signature.inputs) {
    add(spec, response->mutable_inputs());
  }
  for (const TensorSpec& spec : signature.outputs) {
    add(spec, response->mutable_outputs());
  }
}

void FillModelConfig(const ModelConfig& model,
                     const Scheduler::Options& scheduling,
                     inference::ModelConfig* config) {
  config->set_name(model.name);
  config->set_platform(kPlatform);
  config->set_backend("reluserve");
  config->set_max_batch_size(
      static_cast<int32_t>(std::min<int64_t>(model.max_batch, INT32_MAX)));
  const ModelSignature signature = SignatureOf(model);
  for (const TensorSpec& spec : signature.inputs) {
    inference::ModelInput* input = config->add_input();
    input->set_name(spec.name);
    input->set_data_type(inference::TYPE_FP32);
    input->set_optional(spec.optional);
    FillDimsWithoutBatch(spec, input);
  }
  for (const TensorSpec& spec : signature.outputs) {
    inference::ModelOutput* output = config->add_output();
    output->set_name(spec.name);
    output->set_data_type(inference::TYPE_FP32);
    FillDimsWithoutBatch(spec, output);
  }
  if (scheduling.compute_threads > 0 &&
      scheduling.max_batch_delay.count() > 0) {
    inference::ModelDynamicBatching* batching =
        config->mutable_dynamic_batching();
    batching->set_max_queue_delay_microseconds(
        static_cast<uint64_t>(scheduling.max_batch_delay.count()));
    if (scheduling.preferred_batch_rows > 0) {
      batching->add_preferred_batch_size(static_cast<int32_t>(
          std::min<int64_t>(scheduling.preferred_batch_rows, INT32_MAX)));
    }
  }
}

}  // namespace reluserve
