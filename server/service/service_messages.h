#ifndef RELUSERVE_SERVER_SERVICE_SERVICE_MESSAGES_H_
#define RELUSERVE_SERVER_SERVICE_SERVICE_MESSAGES_H_

#include <string>

#include "absl/status/status.h"
#include "grpc_service.pb.h"
#include "server/service/served_model.h"

namespace reluserve {

// The answers of the protocol's non-inference calls, as messages: the gRPC
// front end sends them, the HTTP one writes them as JSON, so both say the
// same.

// Name, version and the protocol extensions served.
void FillServerMetadata(inference::ServerMetadataResponse* response);

// Statistics of every model (`name` empty), every version of `name`
// (`version` empty) or one version; NotFound for a model not served.
absl::Status FillModelStatistics(const ServedModels& models,
                                 const std::string& name,
                                 const std::string& version,
                                 inference::ModelStatisticsResponse* response);

// Every model version and its state: READY while the server is `ready`,
// else UNAVAILABLE with a reason; `ready_only` lists only ready ones.
void FillRepositoryIndex(const ServedModels& models, bool ready,
                         bool ready_only,
                         inference::RepositoryIndexResponse* response);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_SERVICE_MESSAGES_H_
