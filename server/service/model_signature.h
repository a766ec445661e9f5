#ifndef RELUSERVE_SERVER_SERVICE_MODEL_SIGNATURE_H_
#define RELUSERVE_SERVER_SERVICE_MODEL_SIGNATURE_H_

#include <string>
#include <vector>

#include "grpc_service.pb.h"
#include "server/core/model.h"
#include "server/runtime/scheduler.h"
#include "server/service/model_config.h"

namespace reluserve {

// The platform and backend names ModelMetadata and ModelConfig report.
inline constexpr char kPlatform[] = "onednn_linear_relu";
inline constexpr char kBackend[] = "reluserve";

// ModelMetadata's answer: every tensor of the signature with its datatype
// (the first it accepts) and shape (-1: the batch dimension). `versions`:
// every version served of the model.
void FillModelMetadata(const ModelConfig& config,
                       const std::vector<std::string>& versions,
                       const ModelSignature& signature,
                       inference::ModelMetadataResponse* response);

// Triton's ModelConfig: max_batch_size, every tensor with its dims less the
// batch dimension (a tensor without one, a parameter gradient, keeps its
// full shape), optional inputs marked, and dynamic batching when
// `scheduling` batches.
void FillModelConfig(const ModelConfig& config, const ModelSignature& signature,
                     const Scheduler::Options& scheduling,
                     inference::ModelConfig* model_config);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_MODEL_SIGNATURE_H_
