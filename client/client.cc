#include "client/client.h"

#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/client_context.h"

// The wire format is little-endian; tensors are copied to and from it as is.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "reluserve_client assumes a little-endian host");

namespace reluserve {
namespace {

constexpr char kFp32[] = "FP32";

// A fail-fast call on a channel in TRANSIENT_FAILURE ends at once; this
// bounds one that finds it connecting again.
constexpr auto kTlsDetailDeadline = std::chrono::seconds(1);

absl::Status Malformed(absl::string_view problem) {
  return absl::InternalError(absl::StrCat("malformed response: ", problem));
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  // Both enumerate the same canonical codes with the same values.
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  if (code == absl::StatusCode::kResourceExhausted &&
      absl::StrContains(status.error_message(), "Received message larger")) {
    // gRPC's own words, from the server's receive limit, say only the sizes.
    return absl::Status(
        code, absl::StrCat(status.error_message(),
                           ": the request is larger than the server accepts; "
                           "send fewer rows (the server's limit follows from "
                           "its maximum batch size, ModelConfig's "
                           "max_batch_size)"));
  }
  return absl::Status(code, status.error_message());
}

Client::Client(ClientOptions options)
    : Client(options, CreateClientChannel(options.target, options.channel)) {}

Client::Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(inference::GRPCInferenceService::NewStub(channel_)) {}

std::string TlsConnectionDetail(const ChannelOptions& options,
                                const std::shared_ptr<grpc::Channel>& channel) {
  if (!options.security.tls) return "";
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kTlsDetailDeadline);
  inference::ServerLiveResponse response;
  const grpc::Status status =
      inference::GRPCInferenceService::NewStub(channel)->ServerLive(
          &context, inference::ServerLiveRequest(), &response);
  if (status.ok() || status.error_message().empty()) return "";
  // A server that refuses the client's certificate (TLS 1.3) closes the
  // connection after the handshake, which gRPC reports as no more than this.
  const bool closed = absl::StrContains(status.error_message(), "closed");
  return absl::StrCat(" (TLS: ", status.error_message(),
                      closed ? "; does the server want a client certificate, "
                               "--tls-cert and --tls-key, signed by a CA it "
                               "trusts?"
                             : "",
                      ")");
}

absl::Status Client::WaitForConnection(
    std::chrono::milliseconds timeout) const {
  if (channel_->WaitForConnected(std::chrono::system_clock::now() + timeout)) {
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat(
      "cannot reach ", options_.target, ": no connection within ",
      timeout.count(),
      " ms (is the server running there? --connect-timeout-ms waits longer)",
      TlsConnectionDetail(options_.channel, channel_)));
}

void Client::PrepareContext(grpc::ClientContext& context) const {
  if (options_.deadline.count() > 0) {
    context.set_deadline(std::chrono::system_clock::now() + options_.deadline);
  }
}

absl::StatusOr<HealthStatus> Client::Health() const {
  HealthStatus health;
  {
    grpc::ClientContext context;
    PrepareContext(context);
    inference::ServerLiveResponse response;
    grpc::Status status =
        stub_->ServerLive(&context, inference::ServerLiveRequest(), &response);
    if (!status.ok()) return FromGrpcStatus(status);
    health.live = response.live();
  }
  {
    grpc::ClientContext context;
    PrepareContext(context);
    inference::ServerReadyResponse response;
    grpc::Status status = stub_->ServerReady(
        &context, inference::ServerReadyRequest(), &response);
    if (status.ok()) {
      health.ready = response.ready();
    } else {
      health.detail = absl::StrCat(
          "ServerReady: ", FromGrpcStatus(status).ToString(), "; ");
    }
  }
  // No model named: the server's readiness alone (it is ready only once
  // every model has loaded).
  if (options_.model_name.empty()) {
    health.model_ready = true;
    return health;
  }
  {
    grpc::ClientContext context;
    PrepareContext(context);
    inference::ModelReadyRequest request;
    request.set_name(options_.model_name);
    request.set_version(options_.model_version);
    inference::ModelReadyResponse response;
    grpc::Status status = stub_->ModelReady(&context, request, &response);
    if (status.ok()) {
      health.model_ready = response.ready();
    } else {
      absl::StrAppend(&health.detail,
                      "ModelReady: ", FromGrpcStatus(status).ToString());
    }
  }
  return health;
}

absl::StatusOr<inference::ServerMetadataResponse> Client::ServerMetadata()
    const {
  grpc::ClientContext context;
  PrepareContext(context);
  inference::ServerMetadataResponse response;
  grpc::Status status = stub_->ServerMetadata(
      &context, inference::ServerMetadataRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

template <typename Request, typename Response>
absl::StatusOr<Response> Client::CallForModel(grpc::Status (
    inference::GRPCInferenceService::Stub::*method)(grpc::ClientContext*,
                                                    const Request&,
                                                    Response*)) const {
  grpc::ClientContext context;
  PrepareContext(context);
  Request request;
  request.set_name(options_.model_name);
  request.set_version(options_.model_version);
  Response response;
  grpc::Status status = (stub_.get()->*method)(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<inference::ModelMetadataResponse> Client::ModelMetadata() const {
  return CallForModel(&inference::GRPCInferenceService::Stub::ModelMetadata);
}

absl::StatusOr<inference::ModelConfigResponse> Client::ModelConfig() const {
  return CallForModel(&inference::GRPCInferenceService::Stub::ModelConfig);
}

absl::StatusOr<inference::ModelStatisticsResponse> Client::ModelStatistics()
    const {
  return CallForModel(&inference::GRPCInferenceService::Stub::ModelStatistics);
}

absl::StatusOr<inference::ModelInferRequest> Client::MakeRequest(
    const InferInputs& inputs) const {
  return MakeInferRequest(options_, inputs);
}

namespace {

// A ModelInferRequest built once, sent through its Client.
class PreparedGrpcInfer final : public PreparedInfer {
 public:
  PreparedGrpcInfer(const Client& client, inference::ModelInferRequest request)
      : client_(client), request_(std::move(request)) {}

  absl::StatusOr<InferResult> Send() const override {
    return client_.Infer(request_);
  }

 private:
  const Client& client_;
  const inference::ModelInferRequest request_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PreparedInfer>> Client::Prepare(
    const InferInputs& inputs) const {
  absl::StatusOr<inference::ModelInferRequest> request = MakeRequest(inputs);
  if (!request.ok()) return request.status();
  return std::make_unique<PreparedGrpcInfer>(*this, *std::move(request));
}

absl::StatusOr<InferResult> Client::Infer(const InferInputs& inputs) const {
  absl::StatusOr<inference::ModelInferRequest> request = MakeRequest(inputs);
  if (!request.ok()) return request.status();
  return Infer(*request);
}

absl::StatusOr<InferResult> Client::Infer(
    const inference::ModelInferRequest& request) const {
  grpc::ClientContext context;
  PrepareContext(context);
  inference::ModelInferResponse response;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status status = stub_->ModelInfer(&context, request, &response);
  const auto round_trip = std::chrono::steady_clock::now() - start;
  if (!status.ok()) return FromGrpcStatus(status);
  absl::StatusOr<InferResult> result = DecodeResponse(response);
  if (result.ok()) result->round_trip = round_trip;
  return result;
}

absl::StatusOr<InferResult> DecodeResponse(
    const inference::ModelInferResponse& response) {
  const int raw_count = response.raw_output_contents_size();
  if (raw_count != 0 && raw_count != response.outputs_size()) {
    return Malformed(absl::StrCat(response.outputs_size(), " outputs but ",
                                  raw_count, " raw_output_contents"));
  }
  InferResult result;
  result.model_name = response.model_name();
  result.model_version = response.model_version();
  result.id = response.id();
  result.outputs.reserve(response.outputs_size());
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    if (output.datatype() != kFp32) {
      return Malformed(absl::StrCat("output ", output.name(), " has datatype ",
                                    output.datatype(), ", expected FP32"));
    }
    NamedTensor named;
    named.name = output.name();
    named.tensor.shape.assign(output.shape().begin(), output.shape().end());
    absl::StatusOr<int64_t> count = NumElements(named.tensor.shape);
    if (!count.ok()) {
      return Malformed(absl::StrCat("output ", output.name(), ": ",
                                    count.status().message()));
    }
    std::vector<float>& data = named.tensor.data;
    if (raw_count != 0) {
      const std::string& raw = response.raw_output_contents(i);
      if (raw.size() % sizeof(float) != 0 ||
          raw.size() / sizeof(float) != static_cast<uint64_t>(*count)) {
        return Malformed(absl::StrCat("output ", output.name(), " has shape ",
                                      ShapeToString(named.tensor.shape), " (",
                                      *count, " FP32 values) but ", raw.size(),
                                      " bytes"));
      }
      data.resize(raw.size() / sizeof(float));
      if (!raw.empty()) std::memcpy(data.data(), raw.data(), raw.size());
    } else {
      const auto& values = output.contents().fp32_contents();
      if (values.size() != *count) {
        return Malformed(absl::StrCat("output ", output.name(), " has shape ",
                                      ShapeToString(named.tensor.shape),
                                      " but ", values.size(),
                                      " fp32_contents"));
      }
      data.assign(values.begin(), values.end());
    }
    result.outputs.push_back(std::move(named));
  }
  return result;
}

}  // namespace reluserve
