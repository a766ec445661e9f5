#ifndef RELUSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_
#define RELUSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "grpc_service.grpc.pb.h"
#include "server/runtime/dead_relu_monitor.h"
#include "server/runtime/infer_job.h"
#include "server/service/access_log.h"
#include "server/service/callback_service.h"
#include "server/service/metrics.h"
#include "server/service/ordered_stream.h"
#include "server/service/served_model.h"
#include "server/service/wire_response.h"

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

// What the service reports beyond its answers.
struct InferenceMonitoring {
  // The dead-ReLU monitor; window_rows 0 turns it off.
  DeadReluMonitor::Options dead_relu;
  // One line per inference request; null: none. Not owned; outlives the
  // service.
  AccessLog* access_log = nullptr;
};

// The Open Inference Protocol over the served models. Each RPC is a short
// adapter: convert the message, validate against the model's signature
// (the runtime), hand the job to the model's scheduler, translate the
// status.
//
// Thread safety: gRPC calls every method from many threads at once; the
// models are immutable after start-up, counters are atomic and the
// schedulers are thread-safe.
class InferenceService final : public InferenceCallbackService {
 public:
  InferenceService(std::vector<ServedModelSpec> models,
                   const InferenceLimits& limits = InferenceLimits(),
                   const InferenceMonitoring& monitoring = {});
  ~InferenceService() override;

  // The limits in force, defaults resolved.
  const InferenceLimits& limits() const { return limits_; }

  // From now on readiness answers false and new inference requests get
  // UNAVAILABLE; requests already accepted finish normally.
  void StartDraining() { draining_.store(true); }
  // ServerReady and ModelReady answer false from now on (the listener
  // failed: new connections cannot be made); calls are still served.
  void MarkNotReady() { not_ready_.store(true); }

  // Inference requests accepted and not yet answered (unary calls and
  // stream messages).
  int64_t requests_in_flight() const { return requests_in_flight_.load(); }
  // Bytes held by accepted requests whose replies are not yet sent (see
  // InferenceLimits::max_pending_bytes).
  int64_t pending_bytes() const { return pending_bytes_.load(); }
  // Every model's counters and dead-ReLU gauges, for /metrics.
  std::vector<ModelMetrics> Metrics() const;

  grpc::ServerUnaryReactor* ServerLive(
      grpc::CallbackServerContext* context,
      const inference::ServerLiveRequest* request,
      inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(
      grpc::CallbackServerContext* context,
      const inference::ServerReadyRequest* request,
      inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(
      grpc::CallbackServerContext* context,
      const inference::ModelReadyRequest* request,
      inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* context,
      const inference::ServerMetadataRequest* request,
      inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override;
  // Raw bytes both: the request is parsed here, the reply goes out as the
  // slices the model wrote (WireResponse).
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ModelStreamInfer(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ModelConfig(
      grpc::CallbackServerContext* context,
      const inference::ModelConfigRequest* request,
      inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelStatistics(
      grpc::CallbackServerContext* context,
      const inference::ModelStatisticsRequest* request,
      inference::ModelStatisticsResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(
      grpc::CallbackServerContext* context,
      const inference::RepositoryIndexRequest* request,
      inference::RepositoryIndexResponse* response) override;

 private:
  // The outcome, and what to call once the reply has been sent (it gives
  // the request's bytes back to the budget; may be empty).
  using Done = OrderedStreamReactor::Done;

  // Where an inference request came from.
  struct Origin {
    grpc::CallbackServerContext* context;  // alive until `done` returns
    bool streamed;  // a ModelStreamInfer message, not a ModelInfer call
  };
  // Validates `request` (its reply checked against the send limit, in a
  // stream's wrapper if streamed), reserves its bytes, lays out the
  // outputs in `response` and submits the job; `done` is called exactly once
  // with the outcome (`response` cleared on failure), possibly before this
  // returns.
  void StartInference(const inference::ModelInferRequest& request,
                      WireResponse& response,
                      std::chrono::system_clock::time_point deadline,
                      const Origin& origin, Done done);
  void WriteAccessLog(const inference::ModelInferRequest& request,
                      const Origin& origin, int64_t rows,
                      const absl::Status& status, Nanoseconds total) const;
  // `*reserved`: the bytes taken from the budget, also when failing after.
  absl::Status PrepareJob(const inference::ModelInferRequest& request,
                          WireResponse& response,
                          std::chrono::system_clock::time_point deadline,
                          bool streamed, ServedModel& model, InferJob& job,
                          int64_t* reserved);
  // Takes `bytes` from the budget unless it would go beyond it while
  // something else is held.
  bool TryReserve(int64_t bytes);

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

#endif  // RELUSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_
