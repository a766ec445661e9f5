#ifndef RELUSERVE_SERVER_SERVICE_MODEL_SIGNATURE_H_
#define RELUSERVE_SERVER_SERVICE_MODEL_SIGNATURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "grpc_service.pb.h"
#include "server/service/model_config.h"
#include "server/service/scheduler.h"

namespace reluserve {

// One tensor a model takes or gives, as its metadata lists it.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // -1: the batch dimension
  bool optional = false;       // inputs only
};

// The model's inputs and outputs, in the order metadata and config list
// them: the one description both RPCs are written from.
struct ModelSignature {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
};

ModelSignature SignatureOf(const ModelConfig& model);

// The platform name ModelMetadata and ModelConfig report.
inline constexpr char kPlatform[] = "onednn_linear_relu";

// ModelMetadata's answer for `model`.
void FillModelMetadata(const ModelConfig& model,
                       inference::ModelMetadataResponse* response);

// Triton's ModelConfig for `model`: max_batch_size, every tensor with its
// dims less the batch dimension, grad_y optional, and dynamic batching
// when `scheduling` batches.
void FillModelConfig(const ModelConfig& model,
                     const Scheduler::Options& scheduling,
                     inference::ModelConfig* config);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_MODEL_SIGNATURE_H_
