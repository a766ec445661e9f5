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
#include "client/tensor.h"
#include "grpc_service.grpc.pb.h"
#include "grpc_service.pb.h"
#include "grpcpp/channel.h"

namespace reluserve {

struct ClientOptions {
  // host:port, or any gRPC target URI, e.g. ipv4:127.0.0.1:8001,127.0.0.1:8002
  // for several servers (round_robin over them, ChannelOptions).
  std::string target = "127.0.0.1:8001";
  // Retries on UNAVAILABLE and load balancing of the channel Client opens.
  ChannelOptions channel;
  // Applies to each RPC separately; zero or less means no deadline.
  std::chrono::milliseconds deadline{30000};
  std::string model_name = "linear_relu";
  // Empty lets the server choose the version.
  std::string model_version;
};

struct HealthStatus {
  bool live = false;
  bool ready = false;
  bool model_ready = false;
  // Why `ready` or `model_ready` is false when that came from a failed RPC
  // rather than from the server's answer; empty otherwise.
  std::string detail;
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// What to send in one ModelInfer call.
struct InferInputs {
  // The model's inputs by name, each [N, ...], sent in this order; the first
  // one's rows are the batch.
  std::vector<NamedTensor> tensors;
  std::vector<std::string> output_names;  // empty: the server's default set
  std::string id;                         // echoed by the server
};

// An input of a model as its metadata describes it.
struct ModelInput {
  std::string name;
  std::vector<int64_t> row_shape;  // the dimensions after the batch
  // May be left out (Triton's ModelConfig `optional`); a model's optional
  // inputs ask for more work, e.g. an upstream gradient for the backward
  // pass.
  bool optional = false;
};

// What a model takes and gives, read from its metadata.
struct ModelTensors {
  std::vector<ModelInput> inputs;    // in the metadata's order
  std::vector<std::string> outputs;  // in the metadata's order
};

struct InferResult {
  std::string model_name;
  std::string model_version;
  std::string id;
  std::vector<NamedTensor> outputs;  // in the response's order
  // Wall time of the RPC alone (steady_clock), without building the request
  // or decoding the response.
  std::chrono::steady_clock::duration round_trip{};

  // The output called `name`, or nullptr.
  const Tensor* Find(absl::string_view name) const;
};

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
class Client {
 public:
  // Connects lazily: the first RPC opens the connection. The channel is
  // CreateClientChannel(options.target, options.channel).
  explicit Client(ClientOptions options);
  // Uses `channel` instead of opening one (tests, in-process servers);
  // options.channel does not apply then.
  Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  const ClientOptions& options() const { return options_; }

  // Waits up to `timeout` for the channel to connect. Unavailable, saying
  // so and how to wait longer, when it does not.
  absl::Status WaitForConnection(std::chrono::milliseconds timeout) const;

  // ServerLive, then ServerReady and ModelReady (skipped, counting as ready,
  // when the options name no model). Fails only when ServerLive fails (the
  // server cannot be reached); a failure of the other two reads as "not
  // ready", described in `detail`.
  absl::StatusOr<HealthStatus> Health() const;

  absl::StatusOr<inference::ServerMetadataResponse> ServerMetadata() const;
  // Metadata of the options' model and version.
  absl::StatusOr<inference::ModelMetadataResponse> ModelMetadata() const;

  // Triton's ModelConfig of the options' model: max_batch_size, inputs and
  // outputs. Unimplemented from servers without the extension.
  absl::StatusOr<inference::ModelConfigResponse> ModelConfig() const;

  // Builds the request, sends it and decodes the response.
  absl::StatusOr<InferResult> Infer(const InferInputs& inputs) const;

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

// The model's inputs and outputs from its metadata; `config` (null when the
// server has no ModelConfig) says which inputs are optional, and without it
// every input after the first counts as optional. FailedPrecondition when
// the metadata lists no input, or an input has no batch dimension followed
// by fixed ones.
absl::StatusOr<ModelTensors> DescribeModel(
    const inference::ModelMetadataResponse& metadata,
    const inference::ModelConfig* config);

// InvalidArgument, saying what to do, when `inputs` has more rows than
// `config` allows; OK when it fits or `config` states no limit.
absl::Status CheckBatchSize(const InferInputs& inputs,
                            const inference::ModelConfig& config);

// Decodes FP32 outputs from raw_output_contents (or, from servers that use
// them, typed fp32_contents). Internal error for a malformed response.
absl::StatusOr<InferResult> DecodeResponse(
    const inference::ModelInferResponse& response);

// The absl::Status with the same code and message as `status`.
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_CLIENT_H_
