#ifndef RELUSERVE_CLIENT_HTTP_CLIENT_H_
#define RELUSERVE_CLIENT_HTTP_CLIENT_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/http_connection.h"
#include "client/http_protocol.h"
#include "client/inference_client.h"
#include "grpc_service.pb.h"

namespace reluserve {

// A typed client for ReluServe, or any KServe v2 REST server (Triton's
// HTTP endpoint), over HTTP/1.1: the same calls and answers as the gRPC
// Client. Inference sends Triton's binary tensor extension by default
// (options.http_tensors: JSON numbers instead), FP32 or BF16; JSON answers
// are parsed into the gRPC messages of the same name.
//
// Errors: the HTTP status as the gRPC code HttpStatusCode() names, with the
// message of the server's {"error": "..."}; socket failures as
// HttpConnection says (Unavailable when the server cannot be reached).
//
// Thread safety: may be shared by any number of threads. Its calls go one
// at a time over one keep-alive connection (HttpConnection's mutex); for
// calls side by side, use one HttpClient per thread.
class HttpClient final : public InferenceClient {
 public:
  // Connects lazily, on the first call. options.target: see
  // ParseHttpTarget; a bad one fails every call with InvalidArgument.
  explicit HttpClient(ClientOptions options);

  const ClientOptions& options() const override { return options_; }

  absl::Status WaitForConnection(
      std::chrono::milliseconds timeout) const override;

  // GET /v2/health/live (any answer but 200: not live), /v2/health/ready
  // (200 ready; 503 or anything else not) and the model's .../ready.
  absl::StatusOr<HealthStatus> Health() const override;

  // GET /v2, /v2/models/<m>[/versions/<v>], .../config, .../stats.
  absl::StatusOr<inference::ServerMetadataResponse> ServerMetadata()
      const override;
  absl::StatusOr<inference::ModelMetadataResponse> ModelMetadata()
      const override;
  absl::StatusOr<inference::ModelConfigResponse> ModelConfig() const override;
  absl::StatusOr<inference::ModelStatisticsResponse> ModelStatistics()
      const override;

  absl::StatusOr<std::unique_ptr<PreparedInfer>> Prepare(
      const InferInputs& inputs) const override;

  // POSTs an encoded request (its own id) and decodes the answer.
  absl::StatusOr<InferResult> Infer(const HttpInferRequest& request) const;
  using InferenceClient::Infer;

 private:
  // GET `path`; the answer's JSON parsed into `message` when it is 200.
  absl::Status GetJson(const std::string& path,
                       google::protobuf::Message& message) const;
  // The options' model, with its version when they name one.
  std::string ModelPath() const;

  const ClientOptions options_;
  const HttpConnection connection_;
};

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_HTTP_CLIENT_H_
