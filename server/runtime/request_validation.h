#ifndef RELUSERVE_SERVER_RUNTIME_REQUEST_VALIDATION_H_
#define RELUSERVE_SERVER_RUNTIME_REQUEST_VALIDATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/model.h"
#include "server/runtime/inference_request.h"

namespace reluserve {

// Every check of docs/api.md on an inference request against the model's
// signature, in one place for every front end: input names (known, once,
// required ones present), datatypes (one of the input's, the same for all
// inputs), shapes (fixed dimensions, the batch dimension shared and between
// 1 and `max_batch`, reshapeable inputs' features), byte counts, and the
// outputs asked for (known, once, with the inputs they need, datatypes
// available). Failures are InvalidArgument, each naming the tensor, what
// was expected and what came. The result views the request's bytes.
absl::StatusOr<ValidatedRequest> ValidateRequest(
    const InferenceRequest& request, const ModelSignature& signature,
    int64_t max_batch);

// "[2, 37]".
std::string ShapeString(const std::vector<int64_t>& shape);

// A spec's shape with "N" for the batch dimension: "[N, 37]".
std::string SpecShapeString(const TensorSpec& spec);

// Bytes a tensor of `spec` takes at `batch` rows in `precision` (outputs
// with `shape_of` as that input's spec), for message-size limits.
int64_t TensorBytes(const TensorSpec& spec, int64_t batch, Precision precision);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_RUNTIME_REQUEST_VALIDATION_H_
