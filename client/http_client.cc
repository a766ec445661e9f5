#include "client/http_client.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/http_infer_response.h"

namespace reluserve {
namespace {

// An encoded request, sent through its HttpClient.
class PreparedHttpInfer final : public PreparedInfer {
 public:
  PreparedHttpInfer(const HttpClient& client, HttpInferRequest request)
      : client_(client), request_(std::move(request)) {}

  absl::StatusOr<InferResult> Send() const override {
    return client_.Infer(request_);
  }

 private:
  const HttpClient& client_;
  const HttpInferRequest request_;
};

// A readiness answer: 200 is ready, anything else not; `detail` gets the
// reason when the server gave one (a plain 503 says all it needs to).
bool ReadFlag(absl::string_view call, const absl::StatusOr<HttpAnswer>& answer,
              std::string& detail) {
  if (!answer.ok()) {
    absl::StrAppend(&detail, call, ": ", answer.status().ToString(), "; ");
    return false;
  }
  if (answer->status == 200) return true;
  if (!answer->body.empty()) {
    absl::StrAppend(&detail, call, ": ",
                    HttpError(answer->status, answer->body).ToString(), "; ");
  }
  return false;
}

}  // namespace

HttpClient::HttpClient(ClientOptions options)
    : options_(std::move(options)),
      connection_(options_.target, options_.deadline,
                  options_.channel.max_attempts, options_.channel.security) {}

absl::Status HttpClient::WaitForConnection(
    std::chrono::milliseconds timeout) const {
  return connection_.WaitForConnection(timeout);
}

std::string HttpClient::ModelPath() const {
  return HttpModelPath(options_.model_name, options_.model_version);
}

absl::StatusOr<HealthStatus> HttpClient::Health() const {
  HealthStatus health;
  absl::StatusOr<HttpAnswer> live = connection_.Get("/v2/health/live");
  if (!live.ok()) return live.status();
  health.live = ReadFlag("live", live, health.detail);
  health.ready =
      ReadFlag("ready", connection_.Get("/v2/health/ready"), health.detail);
  // No model named: the server's readiness alone (it is ready only once
  // every model has loaded).
  health.model_ready =
      options_.model_name.empty() ||
      ReadFlag("model ready", connection_.Get(ModelPath() + "/ready"),
               health.detail);
  if (absl::EndsWith(health.detail, "; ")) {
    health.detail.resize(health.detail.size() - 2);
  }
  return health;
}

absl::Status HttpClient::GetJson(const std::string& path,
                                 google::protobuf::Message& message) const {
  absl::StatusOr<HttpAnswer> answer = connection_.Get(path);
  if (!answer.ok()) return answer.status();
  if (absl::Status error = HttpError(answer->status, answer->body);
      !error.ok()) {
    return error;
  }
  return ParseJsonMessage(answer->body, message);
}

absl::StatusOr<inference::ServerMetadataResponse> HttpClient::ServerMetadata()
    const {
  inference::ServerMetadataResponse response;
  if (absl::Status status = GetJson("/v2", response); !status.ok()) {
    return status;
  }
  return response;
}

absl::StatusOr<inference::ModelMetadataResponse> HttpClient::ModelMetadata()
    const {
  inference::ModelMetadataResponse response;
  if (absl::Status status = GetJson(ModelPath(), response); !status.ok()) {
    return status;
  }
  return response;
}

absl::StatusOr<inference::ModelConfigResponse> HttpClient::ModelConfig() const {
  inference::ModelConfigResponse response;
  if (absl::Status status =
          GetJson(ModelPath() + "/config", *response.mutable_config());
      !status.ok()) {
    return status;
  }
  return response;
}

absl::StatusOr<inference::ModelStatisticsResponse> HttpClient::ModelStatistics()
    const {
  // Triton's statistics extension: /v2/models/stats for every model.
  const std::string path = options_.model_name.empty()
                               ? std::string("/v2/models/stats")
                               : ModelPath() + "/stats";
  inference::ModelStatisticsResponse response;
  if (absl::Status status = GetJson(path, response); !status.ok()) {
    return status;
  }
  return response;
}

absl::StatusOr<std::unique_ptr<PreparedInfer>> HttpClient::Prepare(
    const InferInputs& inputs) const {
  absl::StatusOr<inference::ModelInferRequest> request =
      MakeInferRequest(options_, inputs);
  if (!request.ok()) return request.status();
  absl::StatusOr<HttpInferRequest> encoded =
      EncodeHttpInferRequest(*request, options_.http_tensors);
  if (!encoded.ok()) return encoded.status();
  return std::make_unique<PreparedHttpInfer>(*this, *std::move(encoded));
}

absl::StatusOr<InferResult> HttpClient::Infer(
    const HttpInferRequest& request) const {
  absl::StatusOr<HttpAnswer> answer =
      connection_.PostInfer(request, request.id);
  if (!answer.ok()) return answer.status();
  if (absl::Status error = HttpError(answer->status, answer->body);
      !error.ok()) {
    return error;
  }
  absl::StatusOr<InferResult> result =
      DecodeHttpInferResponse(answer->infer_response());
  if (result.ok()) result->round_trip = answer->round_trip;
  return result;
}

}  // namespace reluserve
