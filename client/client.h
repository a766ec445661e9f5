#ifndef RELUSERVE_CLIENT_CLIENT_H_
#define RELUSERVE_CLIENT_CLIENT_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/channel.h"
#include "client/inference_client.h"
#include "grpc_service.grpc.pb.h"
#include "grpc_service.pb.h"
#include "grpcpp/channel.h"

namespace reluserve {

// A typed client for ReluServe, or any Open Inference Protocol (KServe v2)
// server, over gRPC.
//
// Thread safety: a Client may be shared by any number of threads. All methods
// are const and use only the channel and the stub, which gRPC makes
// thread-safe; concurrent calls are multiplexed over the one HTTP/2
// connection.
//
// Errors come back as absl::Status with the gRPC code mapped to the absl code
// of the same name and the server's message kept unchanged.
class Client final : public InferenceClient {
 public:
  // Connects lazily: the first RPC opens the connection. The channel is
  // CreateClientChannel(options.target, options.channel).
  explicit Client(ClientOptions options);
  // Uses `channel` instead of opening one (tests, in-process servers);
  // options.channel does not apply then.
  Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  const ClientOptions& options() const override { return options_; }

  // Waits up to `timeout` for the channel to connect.
  absl::Status WaitForConnection(
      std::chrono::milliseconds timeout) const override;

  // ServerLive, then ServerReady and ModelReady.
  absl::StatusOr<HealthStatus> Health() const override;

  absl::StatusOr<inference::ServerMetadataResponse> ServerMetadata()
      const override;
  absl::StatusOr<inference::ModelMetadataResponse> ModelMetadata()
      const override;
  absl::StatusOr<inference::ModelConfigResponse> ModelConfig() const override;
  absl::StatusOr<inference::ModelStatisticsResponse> ModelStatistics()
      const override;

  absl::StatusOr<InferResult> Infer(const InferInputs& inputs) const override;
  absl::StatusOr<std::unique_ptr<PreparedInfer>> Prepare(
      const InferInputs& inputs) const override;

  // The two halves of Infer(), for callers that send one request many times
  // (benchmarks, load generation) and so build it only once.
  // InvalidArgument when a tensor's data does not match its shape.
  absl::StatusOr<inference::ModelInferRequest> MakeRequest(
      const InferInputs& inputs) const;
  absl::StatusOr<InferResult> Infer(
      const inference::ModelInferRequest& request) const;

 private:
  // A context carrying the options' deadline.
  void PrepareContext(grpc::ClientContext& context) const;
  // A unary RPC whose request names the options' model and version.
  template <typename Request, typename Response>
  absl::StatusOr<Response> CallForModel(grpc::Status (
      inference::GRPCInferenceService::Stub::*method)(grpc::ClientContext*,
                                                      const Request&,
                                                      Response*)) const;

  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

// Decodes FP32 outputs from raw_output_contents (or, from servers that use
// them, typed fp32_contents). Internal error for a malformed response.
absl::StatusOr<InferResult> DecodeResponse(
    const inference::ModelInferResponse& response);

// The absl::Status with the same code and message as `status`.
absl::Status FromGrpcStatus(const grpc::Status& status);

// After a channel with TLS failed to connect: " (TLS: <why>)" from gRPC's
// last connection error (e.g. CERTIFICATE_VERIFY_FAILED), which a fail-fast
// call reports at once; empty without TLS or without such an error.
std::string TlsConnectionDetail(const ChannelOptions& options,
                                const std::shared_ptr<grpc::Channel>& channel);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_CLIENT_H_
