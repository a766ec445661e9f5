#ifndef RELUSERVE_SERVER_SERVICE_INFERENCE_RUNTIME_H_
#define RELUSERVE_SERVER_SERVICE_INFERENCE_RUNTIME_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/runtime/dead_relu_monitor.h"
#include "server/runtime/infer_job.h"
#include "server/runtime/inference_request.h"
#include "server/service/access_log.h"
#include "server/service/metrics.h"
#include "server/service/served_model.h"

namespace reluserve {

// What one client may make the server hold (docs/api.md, "Memory bounds"
// and "Message size").
struct InferenceLimits {
  // ModelStreamInfer messages a stream may have read and not yet answered
  // (queued, computing, or answered and waiting for their write); at the
  // bound the stream stops reading, so HTTP/2 flow control holds back a
  // client that sends without reading its replies.
  int max_stream_pending = 16;
  // Bytes that accepted inference requests may hold at once, from admission
  // until their reply has been sent: each request's message, its reply and
  // any BF16 staging. A request that would go beyond gets UNAVAILABLE with a
  // retry hint, except when nothing else is held (so any valid request can
  // run). 0: max(1 GiB, 4 × (the receive limit + the send limit)).
  int64_t max_pending_bytes = 0;
  // The largest message the server sends; a request whose reply would be
  // larger is refused with INVALID_ARGUMENT before compute. 0: the limit
  // Server sets, the largest MaxSendBytes of the models.
  int64_t max_send_bytes = 0;
};

// What the runtime reports beyond its answers.
struct InferenceMonitoring {
  // The dead-ReLU monitor; window_rows 0 turns it off.
  DeadReluMonitor::Options dead_relu;
  // One line per inference request; null: none. Not owned; outlives the
  // runtime.
  AccessLog* access_log = nullptr;
};

// A front end's side of one inference request: the reply it sends in its
// protocol's form, which the model writes into in place.
//
// Thread safety: used by one thread at a time (the request's).
class InferenceReply {
 public:
  virtual ~InferenceReply() = default;
  // The bytes the reply to `validated` will hold, or InvalidArgument (the
  // sizes named) when the protocol could not send it. Called before
  // anything is allocated or computed.
  virtual absl::StatusOr<int64_t> PlanBytes(const ValidatedRequest& validated,
                                            const ModelSignature& signature,
                                            const ModelConfig& config) = 0;
  // Before the first AddOutput.
  virtual void SetHeader(const ModelConfig& config) = 0;
  // Appends `output` (named `name`) and returns its bytes, output.count
  // elements of its precision, for the model or a BF16 conversion to fill
  // (uninitialised; valid until the reply is destroyed or cleared).
  virtual void* AddOutput(std::string_view name,
                          const ValidatedRequest::Output& output) = 0;
  // Back to empty: the answer failed.
  virtual void Clear() = 0;
};

// One inference request as a front end hands it over.
struct RuntimeRequest {
  std::string model_name;
  std::string model_version;  // empty: the highest
  std::string id;
  // The request in the runtime's terms (viewing the front end's message),
  // or why the front end could not convert it.
  absl::StatusOr<InferenceRequest> request;
  // What the protocol message holds in memory, for the pending-bytes bound.
  int64_t message_bytes = 0;
  std::chrono::system_clock::time_point deadline =
      std::chrono::system_clock::time_point::max();
  // True once the client has cancelled (InferJob::cancelled); may be empty.
  std::function<bool()> cancelled;
  // For the access log.
  const char* method = "";
  std::function<std::string()> peer;
};

// Protocol-free serving shared by every front end (gRPC and HTTP): the
// served models, admission (draining, the pending-bytes budget), one
// validation against each model's signature, the job handed to the model's
// scheduler, and the statistics and access log of every request.
//
// Thread safety: every method may be called from many threads at once; the
// models are immutable after start-up, counters are atomic and the
// schedulers are thread-safe.
class InferenceRuntime {
 public:
  // Called once the reply has been sent (or dropped): gives the request's
  // bytes back to the budget.
  using Sent = std::function<void()>;
  // The outcome; `sent` may be empty.
  using Done = std::function<void(const absl::Status& status, Sent sent)>;

  InferenceRuntime(std::vector<ServedModelSpec> models,
                   const InferenceLimits& limits = InferenceLimits(),
                   const InferenceMonitoring& monitoring = {});
  ~InferenceRuntime();

  // The limits in force, defaults resolved.
  const InferenceLimits& limits() const { return limits_; }
  const ServedModels& models() const { return models_; }

  // From now on readiness answers false and new inference requests get
  // UNAVAILABLE; requests already accepted finish normally.
  void StartDraining() { draining_.store(true); }
  // Readiness answers false from now on (a listener failed: new
  // connections cannot be made); calls are still served.
  void MarkNotReady() { not_ready_.store(true); }
  // Neither draining nor marked not ready.
  bool ready() const { return !draining_.load() && !not_ready_.load(); }

  // Inference requests accepted and not yet answered, on every front end.
  int64_t requests_in_flight() const { return requests_in_flight_.load(); }
  // Bytes held by accepted requests whose replies are not yet sent (see
  // InferenceLimits::max_pending_bytes).
  int64_t pending_bytes() const { return pending_bytes_.load(); }
  // Every model's counters and dead-ReLU gauges, for /metrics.
  std::vector<ModelMetrics> Metrics() const;

  // Finds the model, validates the request against its signature, reserves
  // its bytes, lays out the outputs in `reply` and submits the job; `done`
  // is called exactly once with the outcome (`reply` cleared on failure),
  // on any thread, possibly before this returns. `reply` lives until then.
  void Start(RuntimeRequest request, InferenceReply& reply, Done done);

 private:
  absl::Status PrepareJob(const RuntimeRequest& request, InferenceReply& reply,
                          ServedModel& model, InferJob& job, int64_t* reserved);
  // Takes `bytes` from the budget unless it would go beyond it while
  // something else is held.
  bool TryReserve(int64_t bytes);
  void WriteAccessLog(const RuntimeRequest& request, int64_t rows,
                      const absl::Status& status, Nanoseconds total) const;

  const InferenceLimits limits_;  // defaults resolved
  AccessLog* const access_log_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> not_ready_{false};
  std::atomic<int64_t> requests_in_flight_{0};
  std::atomic<int64_t> pending_bytes_{0};
  // Declared last: destroyed first (their schedulers finish their jobs),
  // while the rest is still alive for those jobs.
  const ServedModels models_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_INFERENCE_RUNTIME_H_
