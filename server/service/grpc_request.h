#ifndef RELUSERVE_SERVER_SERVICE_GRPC_REQUEST_H_
#define RELUSERVE_SERVER_SERVICE_GRPC_REQUEST_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpc_service.pb.h"
#include "server/core/model.h"
#include "server/runtime/inference_request.h"
#include "server/service/inference_runtime.h"
#include "server/service/wire_response.h"

namespace reluserve {

// Output parameter choosing an output's datatype ("FP32" or "BF16").
inline constexpr char kDatatypeParameter[] = "datatype";

// The protocol-neutral view of a ModelInferRequest (no copies: it points
// into `request`, which must outlive it), after the checks only the gRPC
// wire has: one raw_input_contents entry per input, raw and typed contents
// never mixed, typed values only in the datatype's field (BF16 has none).
// The runtime's ValidateRequest makes every other check.
absl::StatusOr<InferenceRequest> FromModelInferRequest(
    const inference::ModelInferRequest& request);

// The exact serialized size of the ModelInferResponse that answers
// `request` (model name and version, id, every output's name, datatype,
// shape and bytes), known before anything is allocated or computed.
int64_t ResponseBytes(const ValidatedRequest& validated,
                      const ModelSignature& signature,
                      const std::string& model_name,
                      const std::string& model_version, const std::string& id);

// The size of the ModelStreamInferResponse that wraps a ModelInferResponse
// of `infer_response_bytes` (the stream's message).
int64_t StreamResponseBytes(int64_t infer_response_bytes);

// InvalidArgument, naming both sizes, when a response of `response_bytes`
// (in a stream's wrapper if `streamed`) would exceed `max_message_bytes`,
// the largest message the server sends: gRPC would refuse to send it after
// the compute, and on a stream end the whole stream.
absl::Status CheckResponseFits(int64_t response_bytes,
                               int64_t max_message_bytes, bool streamed);

// A ModelInferRequest (a ModelStreamInferRequest message if `streamed`) as
// the runtime takes it: names, id, the neutral view or why it could not be
// made, and the message's bytes. The caller adds the call's deadline and
// peer.
RuntimeRequest ToRuntimeRequest(const inference::ModelInferRequest& request,
                                bool streamed);

// The gRPC side of a request's reply: a WireResponse, checked against the
// largest message the server sends (in a stream's wrapper if streamed).
class GrpcReply final : public InferenceReply {
 public:
  // `id` (the request's) outlives the reply.
  GrpcReply(WireResponse& response, const std::string& id,
            int64_t max_send_bytes, bool streamed)
      : response_(response),
        id_(id),
        max_send_bytes_(max_send_bytes),
        streamed_(streamed) {}

  absl::StatusOr<int64_t> PlanBytes(const ValidatedRequest& validated,
                                    const ModelSignature& signature,
                                    const ModelConfig& config) override;
  void SetHeader(const ModelConfig& config) override;
  void* AddOutput(std::string_view name,
                  const ValidatedRequest::Output& output) override;
  void Clear() override;

 private:
  WireResponse& response_;
  const std::string& id_;
  const int64_t max_send_bytes_;
  const bool streamed_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_GRPC_REQUEST_H_
