#include "server/service/model_signature.h"

#include <algorithm>
#include <cstdint>

namespace reluserve {
namespace {

template <typename Tensor>
void FillDimsWithoutBatch(const TensorSpec& spec, Tensor* tensor) {
  for (size_t i = 0; i < spec.shape.size(); ++i) {
    if (i == 0 && spec.shape[0] == -1) continue;  // the batch dimension
    tensor->add_dims(spec.shape[i]);
  }
}

inference::DataType ConfigDataType(Precision precision) {
  return precision == Precision::kBFloat16 ? inference::TYPE_BF16
                                           : inference::TYPE_FP32;
}

}  // namespace

void FillModelMetadata(const ModelConfig& config,
                       const std::vector<std::string>& versions,
                       const ModelSignature& signature,
                       inference::ModelMetadataResponse* response) {
  response->set_name(config.name);
  for (const std::string& version : versions) response->add_versions(version);
  response->set_platform(kPlatform);
  const auto add = [](const TensorSpec& spec, auto* tensors) {
    auto* tensor = tensors->Add();
    tensor->set_name(spec.name);
    tensor->set_datatype(DatatypeName(spec.datatypes.front()));
    for (int64_t dim : spec.shape) tensor->add_shape(dim);
  };
  for (const TensorSpec& spec : signature.inputs) {
    add(spec, response->mutable_inputs());
  }
  for (const TensorSpec& spec : signature.outputs) {
    add(spec, response->mutable_outputs());
  }
}

void FillModelConfig(const ModelConfig& config, const ModelSignature& signature,
                     const Scheduler::Options& scheduling,
                     inference::ModelConfig* model_config) {
  model_config->set_name(config.name);
  model_config->set_platform(kPlatform);
  model_config->set_backend(kBackend);
  model_config->set_max_batch_size(
      static_cast<int32_t>(std::min<int64_t>(config.max_batch, INT32_MAX)));
  for (const TensorSpec& spec : signature.inputs) {
    inference::ModelInput* input = model_config->add_input();
    input->set_name(spec.name);
    input->set_data_type(ConfigDataType(spec.datatypes.front()));
    input->set_optional(spec.optional);
    FillDimsWithoutBatch(spec, input);
  }
  for (const TensorSpec& spec : signature.outputs) {
    inference::ModelOutput* output = model_config->add_output();
    output->set_name(spec.name);
    output->set_data_type(ConfigDataType(spec.datatypes.front()));
    FillDimsWithoutBatch(spec, output);
  }
  if (scheduling.compute_threads > 0 &&
      scheduling.max_batch_delay.count() > 0) {
    inference::ModelDynamicBatching* batching =
        model_config->mutable_dynamic_batching();
    batching->set_max_queue_delay_microseconds(
        static_cast<uint64_t>(scheduling.max_batch_delay.count()));
    if (scheduling.preferred_batch_rows > 0) {
      batching->add_preferred_batch_size(static_cast<int32_t>(
          std::min<int64_t>(scheduling.preferred_batch_rows, INT32_MAX)));
    }
  }
}

}  // namespace reluserve
