#ifndef RELUSERVE_SERVER_SERVICE_STATUS_TRANSLATION_H_
#define RELUSERVE_SERVER_SERVICE_STATUS_TRANSLATION_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace reluserve {

// The one place where internal errors become gRPC statuses: the code keeps
// its meaning (absl and gRPC share the canonical codes) and the message is
// passed through unchanged.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_STATUS_TRANSLATION_H_
