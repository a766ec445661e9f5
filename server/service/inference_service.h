#ifndef RELUSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_
#define RELUSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "grpc_service.grpc.pb.h"
#include "server/core/linear_relu.h"
#include "server/service/message_pool.h"
#include "server/service/model_config.h"
#include "server/service/scheduler.h"
#include "server/service/statistics.h"

namespace reluserve {

// The Open Inference Protocol over one LinearRelu model. Each RPC is a short
// adapter: validate, hand the job to the scheduler, translate the status.
//
// Thread safety: gRPC calls every method from many threads at once; the
// model is immutable after start-up, counters are atomic and the scheduler
// is thread-safe.
class InferenceService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  InferenceService(ModelConfig model, std::shared_ptr<const LinearRelu> layer,
                   const Scheduler::Options& scheduling);
  ~InferenceService() override;

  // From now on readiness answers false and new inference requests get
  // UNAVAILABLE; requests already accepted finish normally.
  void StartDraining() { draining_.store(true); }

  // Inference requests accepted and not yet answered (unary calls and
  // stream messages).
  int64_t requests_in_flight() const { return requests_in_flight_.load(); }

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
  grpc::ServerUnaryReactor* ModelInfer(
      grpc::CallbackServerContext* context,
      const inference::ModelInferRequest* request,
      inference::ModelInferResponse* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest,
                          inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* ModelStatistics(
      grpc::CallbackServerContext* context,
      const inference::ModelStatisticsRequest* request,
      inference::ModelStatisticsResponse* response) override;

 private:
  using Done = std::function<void(const absl::Status&)>;

  // Validates `request`, lays out the outputs in `response` and submits the
  // job; `done` is called exactly once with the outcome (`response` cleared
  // on failure), possibly before this returns.
  void StartInference(const inference::ModelInferRequest& request,
                      inference::ModelInferResponse& response,
                      std::chrono::system_clock::time_point deadline,
                      Done done);
  absl::Status PrepareJob(const inference::ModelInferRequest& request,
                          inference::ModelInferResponse& response,
                          std::chrono::system_clock::time_point deadline,
                          InferJob& job) const;

  const ModelConfig model_;
  const std::shared_ptr<const LinearRelu> layer_;
  InferenceStatistics statistics_;
  InferMessagePool message_pool_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> requests_in_flight_{0};
  // Declared last: destroyed first, while the rest is still alive for the
  // jobs it finishes.
  Scheduler scheduler_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_
