#include "server/service/inference_service.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/runtime/request_validation.h"
#include "server/service/grpc_request.h"
#include "server/service/model_signature.h"
#include "server/service/status_translation.h"

#ifndef RELUSERVE_VERSION
#define RELUSERVE_VERSION "unknown"
#endif

namespace reluserve {
namespace {

constexpr char kServerName[] = "reluserve";

grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* context,
                                     const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// One ModelInfer call: its request parsed from the received bytes, its
// reply assembled in place (WireResponse), and its bytes given back to the
// budget once gRPC is done with it (the reply sent, or the call cancelled).
class InferReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit InferReactor(grpc::ByteBuffer* reply) : reply_(reply) {}

  // False, with the call finished INVALID_ARGUMENT, when `received` is not a
  // ModelInferRequest.
  bool Parse(const grpc::ByteBuffer& received) {
    grpc::ByteBuffer bytes(received);  // shares the slices; parsing eats it
    if (grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(
            &bytes, &request_)
            .ok()) {
      return true;
    }
    Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the request could not be parsed as an "
                        "inference.ModelInferRequest"));
    return false;
  }

  const inference::ModelInferRequest& request() const { return request_; }
  WireResponse& response() { return response_; }

  void Answer(const absl::Status& status, OrderedStreamReactor::Sent sent) {
    sent_ = std::move(sent);
    if (status.ok()) *reply_ = response_.Release(/*streamed=*/false);
    request_.Clear();  // the inputs are no longer read
    Finish(ToGrpcStatus(status));
  }
  void OnDone() override {
    if (sent_) sent_();
    delete this;
  }

 private:
  grpc::ByteBuffer* const reply_;
  inference::ModelInferRequest request_;
  WireResponse response_;
  OrderedStreamReactor::Sent sent_;
};

InferenceLimits ResolveLimits(InferenceLimits limits,
                              const std::vector<ServedModelSpec>& models) {
  limits.max_stream_pending = std::max(limits.max_stream_pending, 1);
  int64_t receive = 0, send = 0;
  for (const ServedModelSpec& model : models) {
    receive = std::max<int64_t>(receive, MaxReceiveBytes(model));
    send = std::max<int64_t>(send, MaxSendBytes(model));
  }
  if (limits.max_send_bytes <= 0) limits.max_send_bytes = send;
  if (limits.max_pending_bytes <= 0) {
    // Room for a few of the largest requests with their replies.
    limits.max_pending_bytes = std::max(int64_t{1} << 30, 4 * (receive + send));
  }
  return limits;
}

}  // namespace

InferenceService::InferenceService(std::vector<ServedModelSpec> models,
                                   const InferenceLimits& limits,
                                   const InferenceMonitoring& monitoring)
    : limits_(ResolveLimits(limits, models)),
      access_log_(monitoring.access_log),
      models_(std::move(models), monitoring.dead_relu) {}

InferenceService::~InferenceService() = default;

std::vector<ModelMetrics> InferenceService::Metrics() const {
  std::vector<ModelMetrics> metrics;
  for (const auto& model : models_.all()) metrics.push_back(model->Metrics());
  return metrics;
}

grpc::ServerUnaryReactor* InferenceService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(!draining_.load() && !not_ready_.load());
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  // Like Triton: an unknown model is simply not ready.
  response->set_ready(!draining_.load() && !not_ready_.load() &&
                      models_.Find(request->name(), request->version()).ok());
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name(kServerName);
  response->set_version(RELUSERVE_VERSION);
  response->add_extensions("statistics");
  response->add_extensions("model_configuration");
  response->add_extensions("model_repository");
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  absl::StatusOr<ServedModel*> model =
      models_.Find(request->name(), request->version());
  if (!model.ok()) return FinishWith(context, ToGrpcStatus(model.status()));
  FillModelMetadata((*model)->config(),
                    models_.VersionsOf((*model)->config().name),
                    (*model)->signature(), response);
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context,
    const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  absl::StatusOr<ServedModel*> model =
      models_.Find(request->name(), request->version());
  if (!model.ok()) return FinishWith(context, ToGrpcStatus(model.status()));
  FillModelConfig((*model)->config(), (*model)->signature(),
                  (*model)->scheduling(), response->mutable_config());
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  auto* reactor = new InferReactor(response);
  if (!reactor->Parse(*request)) return reactor;
  StartInference(
      reactor->request(), reactor->response(), context->deadline(),
      Origin{context, /*streamed=*/false},
      [reactor](const absl::Status& status, OrderedStreamReactor::Sent sent) {
        reactor->Answer(status, std::move(sent));
      });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(
    grpc::CallbackServerContext* context,
    const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  const auto add = [response](const ServedModel& model) {
    inference::ModelStatistics& statistics = *response->add_model_stats();
    statistics.set_name(model.config().name);
    statistics.set_version(model.config().version);
    model.statistics().Fill(statistics);
  };
  if (request->name().empty()) {
    // Every model, every version (as Triton).
    for (const auto& model : models_.all()) add(*model);
  } else if (request->version().empty()) {
    if (absl::StatusOr<ServedModel*> found = models_.Find(request->name(), "");
        !found.ok()) {
      return FinishWith(context, ToGrpcStatus(found.status()));
    }
    for (const auto& model : models_.all()) {
      if (model->config().name == request->name()) add(*model);
    }
  } else {
    absl::StatusOr<ServedModel*> model =
        models_.Find(request->name(), request->version());
    if (!model.ok()) return FinishWith(context, ToGrpcStatus(model.status()));
    add(**model);
  }
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context,
    const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  // Every model is loaded at start-up or the server does not start: each
  // is READY, until a drain or a failed listener makes none ready.
  const bool ready = !draining_.load() && !not_ready_.load();
  if (request->ready() && !ready) return FinishWith(context, grpc::Status::OK);
  for (const auto& model : models_.all()) {
    auto* entry = response->add_models();
    entry->set_name(model->config().name);
    entry->set_version(model->config().version);
    entry->set_state(ready ? "READY" : "UNAVAILABLE");
    if (!ready) entry->set_reason("the server is not ready (draining)");
  }
  return FinishWith(context, grpc::Status::OK);
}

bool InferenceService::TryReserve(int64_t bytes) {
  int64_t held = pending_bytes_.load();
  do {
    if (held > 0 && held + bytes > limits_.max_pending_bytes) return false;
  } while (!pending_bytes_.compare_exchange_weak(held, held + bytes));
  return true;
}

void InferenceService::StartInference(
    const inference::ModelInferRequest& request, WireResponse& response,
    std::chrono::system_clock::time_point deadline, const Origin& origin,
    Done done) {
  const bool streamed = origin.streamed;
  const auto arrival = std::chrono::steady_clock::now();
  requests_in_flight_.fetch_add(1);
  // A request for a model not served here is no model's failure.
  absl::StatusOr<ServedModel*> selected =
      models_.Find(request.model_name(), request.model_version());
  ServedModel* model = selected.ok() ? *selected : nullptr;
  if (model != nullptr) model->pending_requests().fetch_add(1);
  auto job = std::make_unique<InferJob>();
  int64_t reserved = 0;
  absl::Status prepared = selected.status();
  if (model != nullptr) {
    try {
      prepared = PrepareJob(request, response, deadline, streamed, *model, *job,
                            &reserved);
    } catch (const std::exception& e) {
      prepared =
          absl::InternalError(absl::StrCat("unexpected error: ", e.what()));
    }
  }
  // The reservation ends once the reply has been sent.
  OrderedStreamReactor::Sent sent;
  if (reserved > 0) {
    sent = [this, reserved] { pending_bytes_.fetch_sub(reserved); };
  }
  auto finish = [this, &request, &response, origin, arrival, model,
                 done = std::move(done), sent = std::move(sent)](
                    const absl::Status& status, const RequestPhases* phases,
                    int64_t rows, bool backward) mutable {
    const auto total = std::chrono::duration_cast<Nanoseconds>(
        std::chrono::steady_clock::now() - arrival);
    if (!status.ok()) response.Clear();
    if (model != nullptr) {
      if (status.ok()) {
        model->statistics().RecordSuccess(rows, total, *phases, backward);
      } else {
        model->statistics().RecordFailure(total, FailureReasonOf(status));
      }
    }
    if (access_log_ != nullptr) {
      WriteAccessLog(request, origin, rows, status, total);
    }
    // Not pending once answered: a scrape after the reply sees it gone.
    if (model != nullptr) model->pending_requests().fetch_sub(1);
    done(status, std::move(sent));
    requests_in_flight_.fetch_sub(1);
  };

  if (!prepared.ok()) {
    finish(prepared, nullptr, 0, false);
    return;
  }
  job->arrival = arrival;
  job->phases.compute_input = std::chrono::duration_cast<Nanoseconds>(
      std::chrono::steady_clock::now() - arrival);
  job->done = [finish = std::move(finish)](InferJob& finished,
                                           const absl::Status& status) mutable {
    finish(status, &finished.phases, finished.validated.batch,
           finished.validated.backward);
  };
  model->scheduler().Submit(std::move(job));
}

void InferenceService::WriteAccessLog(
    const inference::ModelInferRequest& request, const Origin& origin,
    int64_t rows, const absl::Status& status, Nanoseconds total) const {
  AccessRecord record;
  record.method = origin.streamed ? "ModelStreamInfer" : "ModelInfer";
  record.model = request.model_name();
  record.version = request.model_version();
  record.id = request.id();
  record.peer = origin.context->peer();
  record.rows = rows;
  record.code = status.code();
  record.microseconds =
      std::chrono::duration_cast<std::chrono::microseconds>(total).count();
  access_log_->Write(record);
}

absl::Status InferenceService::PrepareJob(
    const inference::ModelInferRequest& request, WireResponse& response,
    std::chrono::system_clock::time_point deadline, bool streamed,
    ServedModel& model, InferJob& job, int64_t* reserved) {
  if (draining_.load()) {
    return absl::UnavailableError("server is shutting down; retry elsewhere");
  }
  absl::StatusOr<InferenceRequest> neutral = FromModelInferRequest(request);
  if (!neutral.ok()) return neutral.status();
  const ModelSignature& signature = model.signature();
  absl::StatusOr<ValidatedRequest> validated =
      ValidateRequest(*neutral, signature, model.config().max_batch);
  if (!validated.ok()) return validated.status();
  const int64_t response_bytes =
      ResponseBytes(*validated, signature, model.config().name,
                    model.config().version, request.id());
  // Before anything is allocated: gRPC would refuse to send the reply.
  if (absl::Status fits =
          CheckResponseFits(response_bytes, limits_.max_send_bytes, streamed);
      !fits.ok()) {
    return fits;
  }
  // What the request holds until its reply is sent: its message, the reply
  // and the FP32 staging of BF16 outputs.
  int64_t bytes = static_cast<int64_t>(request.ByteSizeLong()) + response_bytes;
  size_t staging = 0;
  for (const ValidatedRequest::Output& output : validated->outputs) {
    if (output.precision == Precision::kBFloat16) {
      staging += static_cast<size_t>(output.count);
    }
  }
  bytes += static_cast<int64_t>(staging * sizeof(float));
  if (!TryReserve(bytes)) {
    return absl::UnavailableError(absl::StrCat(
        "server busy: requests in progress hold ", pending_bytes_.load(),
        " bytes of the ", limits_.max_pending_bytes,
        " they may, and this one needs ", bytes,
        "; retry after a short backoff"));
  }
  *reserved = bytes;

  job.deadline = deadline;
  job.validated = *std::move(validated);
  job.outputs.assign(signature.outputs.size(), nullptr);
  job.staging.resize(staging);

  response.SetHeader(model.config().name, model.config().version, request.id());
  // The model writes FP32; a BF16 output is computed into staging first.
  float* next_staged = job.staging.data();
  for (const ValidatedRequest::Output& output : job.validated.outputs) {
    void* target = response.AddOutput(
        signature.outputs[static_cast<size_t>(output.index)].name, output);
    float*& slot = job.outputs[static_cast<size_t>(output.index)];
    if (output.precision == Precision::kFloat32) {
      slot = static_cast<float*>(target);
    } else {
      slot = next_staged;
      job.conversions.push_back({next_staged, static_cast<uint16_t*>(target),
                                 static_cast<size_t>(output.count)});
      next_staged += output.count;
    }
  }
  return absl::OkStatus();
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
InferenceService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  OrderedStreamReactor::Options options;
  options.max_pending = static_cast<size_t>(limits_.max_stream_pending);
  options.max_reply_bytes = limits_.max_send_bytes;
  return new OrderedStreamReactor(
      [this, context, deadline](const inference::ModelInferRequest& request,
                                WireResponse& response,
                                OrderedStreamReactor::Done done) {
        StartInference(request, response, deadline,
                       Origin{context, /*streamed=*/true}, std::move(done));
      },
      options);
}

}  // namespace reluserve
