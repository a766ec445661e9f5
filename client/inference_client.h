// What a client of an Open Inference Protocol (KServe v2) server does,
// whatever carries it: the request and answer types, and InferenceClient,
// which the gRPC Client (client/client.h) and the HttpClient
// (client/http_client.h) implement, so that reluserve-client and
// reluserve-load pick a protocol without knowing its calls.

#ifndef RELUSERVE_CLIENT_INFERENCE_CLIENT_H_
#define RELUSERVE_CLIENT_INFERENCE_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/channel.h"
#include "client/tensor.h"
#include "grpc_service.pb.h"

namespace reluserve {

// How requests travel: gRPC (GRPCInferenceService) or HTTP/1.1 (KServe v2
// REST with Triton's binary tensor extension).
enum class Protocol { kGrpc, kHttp };

// "grpc" or "http" (the --protocol values).
absl::string_view ProtocolName(Protocol protocol);

// Where a server listens by default: 127.0.0.1:8001 for gRPC,
// 127.0.0.1:8000 for HTTP (Triton's ports).
const char* DefaultTarget(Protocol protocol);

// How an HTTP request carries its tensors.
enum class HttpTensors {
  // Triton's binary tensor extension: a JSON header, then the raw
  // little-endian bytes; outputs come back the same way. What
  // tritonclient.http does by default; the only form for BF16.
  kBinary,
  // Every value a number in the JSON body, both ways (FP32 only).
  kJson,
};

struct ClientOptions {
  // gRPC: host:port, or any gRPC target URI, e.g.
  // ipv4:127.0.0.1:8001,127.0.0.1:8002 for several servers (round_robin
  // over them, ChannelOptions). HTTP: one host:port, [v6 address]:port or
  // http://host:port.
  std::string target = "127.0.0.1:8001";
  // gRPC: retries on UNAVAILABLE and load balancing of the channel.
  // HTTP: channel.max_attempts alone applies (an inference request answered
  // 503, or whose connection is refused, is sent again that many times in
  // all, on gRPC's schedule).
  ChannelOptions channel;
  // Applies to each call separately, every attempt included; zero or less
  // means no deadline.
  std::chrono::milliseconds deadline{30000};
  std::string model_name = "linear_relu";
  // Empty lets the server choose the version.
  std::string model_version;
  // HTTP only.
  HttpTensors http_tensors = HttpTensors::kBinary;
};

struct HealthStatus {
  bool live = false;
  bool ready = false;
  bool model_ready = false;
  // Why `ready` or `model_ready` is false when that came from a failed call
  // rather than from the server's answer; empty otherwise.
  std::string detail;
};

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// What to send in one inference request.
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
  // Wall time of the call alone (steady_clock), without building the
  // request or decoding the response.
  std::chrono::steady_clock::duration round_trip{};

  // The output called `name`, or nullptr.
  const Tensor* Find(absl::string_view name) const;
};

// One inference request, encoded once for its protocol, to send any number
// of times (reluserve-client --repeat). Thread safety: Send() may be called
// from any thread, as the client it came from allows; it must not outlive
// that client.
class PreparedInfer {
 public:
  virtual ~PreparedInfer() = default;
  virtual absl::StatusOr<InferResult> Send() const = 0;
};

// The calls of an Open Inference Protocol client. Errors come back as
// absl::Status with gRPC's code names (an HTTP status mapped to one:
// HttpStatusCode in client/http_protocol.h) and the server's message.
//
// Thread safety: implementations may be shared by any number of threads
// (every method is const).
class InferenceClient {
 public:
  virtual ~InferenceClient() = default;

  virtual const ClientOptions& options() const = 0;

  // Waits up to `timeout` for a connection. Unavailable, saying so and how
  // to wait longer, when there is none.
  virtual absl::Status WaitForConnection(
      std::chrono::milliseconds timeout) const = 0;

  // Live, then ready and the model ready (skipped, counting as ready, when
  // the options name no model). Fails only when the server cannot be
  // reached; a failure of the other two reads as "not ready", described in
  // `detail`.
  virtual absl::StatusOr<HealthStatus> Health() const = 0;

  virtual absl::StatusOr<inference::ServerMetadataResponse> ServerMetadata()
      const = 0;
  // Metadata of the options' model and version.
  virtual absl::StatusOr<inference::ModelMetadataResponse> ModelMetadata()
      const = 0;
  // Triton's ModelConfig of the options' model: max_batch_size, inputs and
  // outputs. Unimplemented (gRPC) or NotFound (HTTP) from servers without
  // the extension.
  virtual absl::StatusOr<inference::ModelConfigResponse> ModelConfig()
      const = 0;
  // Triton's statistics of the options' model (every version when the
  // options name none).
  virtual absl::StatusOr<inference::ModelStatisticsResponse> ModelStatistics()
      const = 0;

  // Builds the request, sends it and decodes the response.
  virtual absl::StatusOr<InferResult> Infer(const InferInputs& inputs) const;
  // The request built once. InvalidArgument when a tensor's data does not
  // match its shape, or the protocol cannot carry it.
  virtual absl::StatusOr<std::unique_ptr<PreparedInfer>> Prepare(
      const InferInputs& inputs) const = 0;
};

// A gRPC Client (a channel of its own, CreateClientChannel) or an
// HttpClient for `options`.
std::unique_ptr<InferenceClient> CreateInferenceClient(Protocol protocol,
                                                       ClientOptions options);

// The ModelInferRequest for `inputs` to the options' model and version:
// FP32 tensors as raw_input_contents, the outputs asked for by name. Both
// protocols encode requests from it. InvalidArgument when a tensor's data
// does not match its shape.
absl::StatusOr<inference::ModelInferRequest> MakeInferRequest(
    const ClientOptions& options, const InferInputs& inputs);

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

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_INFERENCE_CLIENT_H_
