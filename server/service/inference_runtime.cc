#include "server/service/inference_runtime.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/runtime/request_validation.h"

namespace reluserve {
namespace {

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

InferenceRuntime::InferenceRuntime(std::vector<ServedModelSpec> models,
                                   const InferenceLimits& limits,
                                   const InferenceMonitoring& monitoring)
    : limits_(ResolveLimits(limits, models)),
      access_log_(monitoring.access_log),
      models_(std::move(models), monitoring.dead_relu) {}

InferenceRuntime::~InferenceRuntime() = default;

std::vector<ModelMetrics> InferenceRuntime::Metrics() const {
  std::vector<ModelMetrics> metrics;
  for (const auto& model : models_.all()) metrics.push_back(model->Metrics());
  return metrics;
}

bool InferenceRuntime::TryReserve(int64_t bytes) {
  int64_t held = pending_bytes_.load();
  do {
    if (held > 0 && held + bytes > limits_.max_pending_bytes) return false;
  } while (!pending_bytes_.compare_exchange_weak(held, held + bytes));
  return true;
}

void InferenceRuntime::Start(RuntimeRequest request, InferenceReply& reply,
                             Done done) {
  const auto arrival = std::chrono::steady_clock::now();
  requests_in_flight_.fetch_add(1);
  // A request for a model not served here is no model's failure.
  absl::StatusOr<ServedModel*> selected =
      models_.Find(request.model_name, request.model_version);
  ServedModel* model = selected.ok() ? *selected : nullptr;
  if (model != nullptr) model->pending_requests().fetch_add(1);
  auto job = std::make_unique<InferJob>();
  int64_t reserved = 0;
  absl::Status prepared = selected.status();
  if (model != nullptr) {
    try {
      prepared = PrepareJob(request, reply, *model, *job, &reserved);
    } catch (const std::exception& e) {
      prepared =
          absl::InternalError(absl::StrCat("unexpected error: ", e.what()));
    }
  }
  // The reservation ends once the reply has been sent.
  Sent sent;
  if (reserved > 0) {
    sent = [this, reserved] { pending_bytes_.fetch_sub(reserved); };
  }
  auto finish = [this, request = std::move(request), &reply, arrival, model,
                 done = std::move(done), sent = std::move(sent)](
                    const absl::Status& status, const RequestPhases* phases,
                    int64_t rows, bool backward) mutable {
    const auto total = std::chrono::duration_cast<Nanoseconds>(
        std::chrono::steady_clock::now() - arrival);
    if (!status.ok()) reply.Clear();
    if (model != nullptr) {
      if (status.ok()) {
        model->statistics().RecordSuccess(rows, total, *phases, backward);
      } else {
        model->statistics().RecordFailure(total, FailureReasonOf(status));
      }
    }
    if (access_log_ != nullptr) WriteAccessLog(request, rows, status, total);
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

void InferenceRuntime::WriteAccessLog(const RuntimeRequest& request,
                                      int64_t rows, const absl::Status& status,
                                      Nanoseconds total) const {
  AccessRecord record;
  record.method = request.method;
  record.model = request.model_name;
  record.version = request.model_version;
  record.id = request.id;
  if (request.peer) record.peer = request.peer();
  record.rows = rows;
  record.code = status.code();
  record.microseconds =
      std::chrono::duration_cast<std::chrono::microseconds>(total).count();
  access_log_->Write(record);
}

absl::Status InferenceRuntime::PrepareJob(const RuntimeRequest& request,
                                          InferenceReply& reply,
                                          ServedModel& model, InferJob& job,
                                          int64_t* reserved) {
  if (draining_.load()) {
    return absl::UnavailableError("server is shutting down; retry elsewhere");
  }
  if (!request.request.ok()) return request.request.status();
  const ModelSignature& signature = model.signature();
  absl::StatusOr<ValidatedRequest> validated =
      ValidateRequest(*request.request, signature, model.config().max_batch);
  if (!validated.ok()) return validated.status();
  // Before anything is allocated: the protocol could not send the reply.
  absl::StatusOr<int64_t> reply_bytes =
      reply.PlanBytes(*validated, signature, model.config());
  if (!reply_bytes.ok()) return reply_bytes.status();
  // What the request holds until its reply is sent: its message, the reply
  // and the FP32 staging of BF16 outputs.
  int64_t bytes = request.message_bytes + *reply_bytes;
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

  job.deadline = request.deadline;
  job.cancelled = request.cancelled;
  job.validated = *std::move(validated);
  job.outputs.assign(signature.outputs.size(), nullptr);
  job.staging.resize(staging);

  reply.SetHeader(model.config());
  // The model writes FP32; a BF16 output is computed into staging first.
  float* next_staged = job.staging.data();
  for (const ValidatedRequest::Output& output : job.validated.outputs) {
    void* target = reply.AddOutput(
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

}  // namespace reluserve
