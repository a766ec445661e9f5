#ifndef RELUSERVE_SERVER_SERVICE_REQUEST_VALIDATION_H_
#define RELUSERVE_SERVER_SERVICE_REQUEST_VALIDATION_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpc_service.pb.h"
#include "server/core/precision.h"
#include "server/service/model_config.h"

namespace reluserve {

enum class OutputTensor { kY, kGradX, kGradWeight, kGradBias };

absl::string_view OutputName(OutputTensor output);

// One output to return, and the datatype it goes out in.
struct RequestedOutput {
  OutputTensor tensor;
  Precision precision = Precision::kFloat32;
  bool operator==(const RequestedOutput& other) const {
    return tensor == other.tensor && precision == other.precision;
  }
};

// A request that passed every check, as views into the request message: it
// is valid only while that message lives and is not modified.
struct ValidatedInferRequest {
  int64_t batch = 0;
  Precision input_precision = Precision::kFloat32;  // of x and grad_y
  const void* x = nullptr;                          // [batch, K] row-major
  std::vector<int64_t> x_shape;  // as the client sent it, e.g. [N, 3, 32, 32]
  const void* grad_y = nullptr;  // [batch, M], or null for forward only
  std::vector<RequestedOutput> outputs;  // what to return, in order
  // The exact serialized size of the ModelInferResponse that answers the
  // request (id, model name and version, every output's name, datatype,
  // shape and bytes), known before anything is allocated or computed.
  int64_t response_bytes = 0;

  bool NeedsBackward() const;
};

// Every check of docs/api.md on a ModelInfer request, in one place: model name
// and version (NotFound), then tensors, datatypes, shapes, byte counts and
// output selection (InvalidArgument). Each message names the tensor, what was
// expected and what came.
absl::StatusOr<ValidatedInferRequest> ValidateInferRequest(
    const inference::ModelInferRequest& request, const ModelConfig& model);

// The shape `output` goes out in: y [N, M], grad_x the shape of x,
// grad_weight [M, K], grad_bias [M].
std::vector<int64_t> OutputShape(const ValidatedInferRequest& request,
                                 OutputTensor output, const ModelConfig& model);

// The size of the ModelStreamInferResponse that wraps a ModelInferResponse
// of `infer_response_bytes` (the stream's message).
int64_t StreamResponseBytes(int64_t infer_response_bytes);

// InvalidArgument, naming both sizes, when the response to `request` (in a
// stream's wrapper if `streamed`) would exceed `max_message_bytes`, the
// largest message the server sends: gRPC would refuse to send it after the
// compute, and on a stream end the whole stream.
absl::Status CheckResponseFits(const ValidatedInferRequest& request,
                               int64_t max_message_bytes, bool streamed);

// NotFound unless `name`/`version` select the served model; an empty version
// means the server's choice.
absl::Status CheckModelSelected(absl::string_view name,
                                absl::string_view version,
                                const ModelConfig& model);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_REQUEST_VALIDATION_H_
