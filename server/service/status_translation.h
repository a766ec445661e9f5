#ifndef RELUSERVE_SERVER_SERVICE_STATUS_TRANSLATION_H_
#define RELUSERVE_SERVER_SERVICE_STATUS_TRANSLATION_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace reluserve {

// The one place where internal errors become protocol statuses: the code
// keeps its meaning and the message is passed through unchanged.

// absl and gRPC share the canonical codes.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The HTTP status of the REST protocol (docs/api.md, "Status codes"): 400
// invalid, 404 not found, 413 too large, 503 unavailable, 504 deadline, 401
// unauthenticated, 500 for the rest.
int ToHttpStatus(const absl::Status& status);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_STATUS_TRANSLATION_H_
