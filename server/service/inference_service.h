#ifndef RELUSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_
#define RELUSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "grpc_service.grpc.pb.h"
#include "server/core/linear_relu.h"
#include "server/service/model_config.h"

namespace reluserve {

// The Open Inference Protocol over one LinearRelu model. Each RPC is a short
// adapter: validate, run the core, translate the status.
//
// Thread safety: gRPC calls every method from many threads at once; the
// model is immutable after start-up and draining is an atomic flag.
class InferenceService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  InferenceService(ModelConfig model, std::shared_ptr<const LinearRelu> layer);

  // From now on readiness answers false and new inference calls get
  // UNAVAILABLE; calls already running finish normally.
  void StartDraining() { draining_.store(true); }

  // ModelInfer calls between their start and their Finish().
  int64_t calls_in_flight() const { return calls_in_flight_.load(); }

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

 private:
  absl::Status Infer(const grpc::CallbackServerContext& context,
                     const inference::ModelInferRequest& request,
                     inference::ModelInferResponse& response) const;

  const ModelConfig model_;
  const std::shared_ptr<const LinearRelu> layer_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> calls_in_flight_{0};
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_
