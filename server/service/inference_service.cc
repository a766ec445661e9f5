#include "server/service/inference_service.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/service/model_signature.h"
#include "server/service/request_validation.h"
#include "server/service/server.h"
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

// A ModelInfer call that gives its bytes back to the budget once gRPC is
// done with it: the reply sent (or the call cancelled).
class InferReactor final : public grpc::ServerUnaryReactor {
 public:
  void Answer(const absl::Status& status, OrderedStreamReactor::Sent sent) {
    sent_ = std::move(sent);
    Finish(ToGrpcStatus(status));
  }
  void OnDone() override {
    if (sent_) sent_();
    delete this;
  }

 private:
  OrderedStreamReactor::Sent sent_;
};

InferenceLimits ResolveLimits(InferenceLimits limits,
                              const ModelConfig& model) {
  limits.max_stream_pending = std::max(limits.max_stream_pending, 1);
  if (limits.max_send_bytes <= 0) limits.max_send_bytes = MaxSendBytes(model);
  if (limits.max_pending_bytes <= 0) {
    // Room for a few of the largest requests with their replies.
    const int64_t largest =
        int64_t{MaxReceiveBytes(model)} + int64_t{MaxSendBytes(model)};
    limits.max_pending_bytes = std::max(int64_t{1} << 30, 4 * largest);
  }
  return limits;
}

int64_t ElementCount(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

// Appends an output of `shape` in `precision` to the response and returns
// its bytes, which the core (or a conversion) fills in place.
void* AddOutput(inference::ModelInferResponse& response,
                const RequestedOutput& output,
                const std::vector<int64_t>& shape, size_t* count) {
  auto* tensor = response.add_outputs();
  tensor->set_name(std::string(OutputName(output.tensor)));
  tensor->set_datatype(output.precision == Precision::kBFloat16 ? kBf16
                                                                : kFp32);
  *count = 1;
  for (int64_t dim : shape) {
    tensor->add_shape(dim);
    *count *= static_cast<size_t>(dim);
  }
  std::string* bytes = response.add_raw_output_contents();
  bytes->resize(*count * ElementBytes(output.precision));
  return bytes->data();
}

}  // namespace

InferenceService::InferenceService(reluserve::ModelConfig model,
                                   std::shared_ptr<const LinearRelu> layer,
                                   const Scheduler::Options& scheduling,
                                   const InferenceLimits& limits,
                                   const InferenceMonitoring& monitoring)
    : model_(std::move(model)),
      scheduling_(scheduling),
      limits_(ResolveLimits(limits, model_)),
      layer_(layer),
      // Enough idle pairs for every call one machine can have computing and
      // sending; pairs above 64 MiB (N ≈ 4000 fwd+bwd) are not kept.
      message_pool_(/*max_idle=*/32, /*max_pooled_bytes=*/64 << 20),
      access_log_(monitoring.access_log),
      relu_monitor_(monitoring.dead_relu.window_rows > 0
                        ? std::make_unique<DeadReluMonitor>(
                              layer->out_features(), monitoring.dead_relu,
                              absl::StrCat("model ", model_.name, " v",
                                           model_.version, " layer 0"))
                        : nullptr),
      scheduler_(scheduling, std::move(layer), &statistics_,
                 relu_monitor_.get()) {
  SetMessageAllocatorFor_ModelInfer(&message_pool_);
}

InferenceService::~InferenceService() = default;

ModelMetrics InferenceService::Metrics() const {
  ModelMetrics metrics;
  metrics.name = model_.name;
  metrics.version = model_.version;
  metrics.totals = statistics_.Read();
  metrics.pending_requests = requests_in_flight_.load();
  // One Linear+ReLU: its ReLU follows Linear 0.
  if (relu_monitor_ != nullptr) {
    metrics.relu_layers.push_back({"0", relu_monitor_->Read()});
  }
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
  response->set_ready(
      !draining_.load() && !not_ready_.load() &&
      CheckModelSelected(request->name(), request->version(), model_).ok());
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
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  if (absl::Status selected =
          CheckModelSelected(request->name(), request->version(), model_);
      !selected.ok()) {
    return FinishWith(context, ToGrpcStatus(selected));
  }
  FillModelMetadata(model_, response);
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context,
    const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  if (absl::Status selected =
          CheckModelSelected(request->name(), request->version(), model_);
      !selected.ok()) {
    return FinishWith(context, ToGrpcStatus(selected));
  }
  FillModelConfig(model_, scheduling_, response->mutable_config());
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(
    grpc::CallbackServerContext* context,
    const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  auto* reactor = new InferReactor();
  StartInference(
      *request, *response, context->deadline(),
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
  // An empty name asks for every model: here, the one.
  if (!request->name().empty()) {
    if (absl::Status selected =
            CheckModelSelected(request->name(), request->version(), model_);
        !selected.ok()) {
      return FinishWith(context, ToGrpcStatus(selected));
    }
  }
  inference::ModelStatistics& statistics = *response->add_model_stats();
  statistics.set_name(model_.name);
  statistics.set_version(model_.version);
  statistics_.Fill(statistics);
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
    const inference::ModelInferRequest& request,
    inference::ModelInferResponse& response,
    std::chrono::system_clock::time_point deadline, const Origin& origin,
    Done done) {
  const bool streamed = origin.streamed;
  const auto arrival = std::chrono::steady_clock::now();
  requests_in_flight_.fetch_add(1);
  auto job = std::make_unique<InferJob>();
  int64_t reserved = 0;
  absl::Status prepared;
  try {
    prepared =
        PrepareJob(request, response, deadline, streamed, *job, &reserved);
  } catch (const std::exception& e) {
    prepared =
        absl::InternalError(absl::StrCat("unexpected error: ", e.what()));
  }
  // The reservation ends once the reply has been sent.
  OrderedStreamReactor::Sent sent;
  if (reserved > 0) {
    sent = [this, reserved] { pending_bytes_.fetch_sub(reserved); };
  }
  auto finish = [this, &request, &response, origin, arrival,
                 done = std::move(done), sent = std::move(sent)](
                    const absl::Status& status,
                    const InferenceStatistics::RequestPhases* phases,
                    int64_t rows, bool backward) mutable {
    const auto total = std::chrono::duration_cast<Nanoseconds>(
        std::chrono::steady_clock::now() - arrival);
    if (status.ok()) {
      statistics_.RecordSuccess(rows, total, *phases, backward);
    } else {
      response.Clear();
      // A request for a model not served here is not this model's failure.
      if (status.code() != absl::StatusCode::kNotFound) {
        statistics_.RecordFailure(total, FailureReasonOf(status));
      }
    }
    if (access_log_ != nullptr) {
      WriteAccessLog(request, origin, rows, status, total);
    }
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
           finished.validated.NeedsBackward());
  };
  scheduler_.Submit(std::move(job));
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
    const inference::ModelInferRequest& request,
    inference::ModelInferResponse& response,
    std::chrono::system_clock::time_point deadline, bool streamed,
    InferJob& job, int64_t* reserved) {
  if (draining_.load()) {
    return absl::UnavailableError("server is shutting down; retry elsewhere");
  }
  absl::StatusOr<ValidatedInferRequest> validated =
      ValidateInferRequest(request, model_);
  if (!validated.ok()) return validated.status();
  // Before anything is allocated: gRPC would refuse to send the reply.
  if (absl::Status fits =
          CheckResponseFits(*validated, limits_.max_send_bytes, streamed);
      !fits.ok()) {
    return fits;
  }
  // What the request holds until its reply is sent: its message, the reply
  // and the FP32 staging of BF16 outputs.
  int64_t bytes =
      static_cast<int64_t>(request.ByteSizeLong()) + validated->response_bytes;
  for (const RequestedOutput& output : validated->outputs) {
    if (output.precision == Precision::kBFloat16) {
      bytes += ElementCount(OutputShape(*validated, output.tensor, model_)) *
               static_cast<int64_t>(sizeof(float));
    }
  }
  if (!TryReserve(bytes)) {
    return absl::UnavailableError(absl::StrCat(
        "server busy: requests in progress hold ", pending_bytes_.load(),
        " bytes of the ", limits_.max_pending_bytes,
        " they may, and this one needs ", bytes,
        "; retry after a short backoff"));
  }
  *reserved = bytes;

  job.request = &request;
  job.response = &response;
  job.deadline = deadline;
  job.validated = *std::move(validated);

  response.set_model_name(model_.name);
  response.set_model_version(model_.version);
  response.set_id(request.id());
  // The core writes FP32; a BF16 output is computed into staging first.
  std::vector<std::pair<float**, size_t>> staged;  // (pointer, offset)
  for (const RequestedOutput& output : job.validated.outputs) {
    float** target = nullptr;
    switch (output.tensor) {
      case OutputTensor::kY:
        target = &job.y;
        break;
      case OutputTensor::kGradX:
        target = &job.gradients.grad_x;
        break;
      case OutputTensor::kGradWeight:
        target = &job.gradients.grad_weight;
        break;
      case OutputTensor::kGradBias:
        target = &job.gradients.grad_bias;
        break;
    }
    size_t count = 0;
    void* bytes =
        AddOutput(response, output,
                  OutputShape(job.validated, output.tensor, model_), &count);
    if (output.precision == Precision::kFloat32) {
      *target = static_cast<float*>(bytes);
    } else {
      staged.emplace_back(target, job.staging.size());
      job.conversions.push_back(
          {nullptr, static_cast<uint16_t*>(bytes), count});
      job.staging.resize(job.staging.size() + count);
    }
  }
  for (size_t i = 0; i < staged.size(); ++i) {
    float* start = job.staging.data() + staged[i].second;
    *staged[i].first = start;
    job.conversions[i].from = start;
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
                                inference::ModelInferResponse& response,
                                OrderedStreamReactor::Done done) {
        StartInference(request, response, deadline,
                       Origin{context, /*streamed=*/true}, std::move(done));
      },
      options);
}

}  // namespace reluserve
