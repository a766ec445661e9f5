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
#include "server/service/callback_service.h"
#include "server/service/inference_runtime.h"
#include "server/service/ordered_stream.h"
#include "server/service/served_model.h"
#include "server/service/wire_response.h"

namespace reluserve {

// The Open Inference Protocol's gRPC flavour over the runtime. Each RPC is
// a short adapter: convert the message, let the runtime validate and run
// it, translate the status.
//
// Thread safety: gRPC calls every method from many threads at once; the
// runtime is thread-safe.
class InferenceService final : public InferenceCallbackService {
 public:
  explicit InferenceService(std::shared_ptr<InferenceRuntime> runtime);
  // With a runtime of its own over `models`.
  InferenceService(std::vector<ServedModelSpec> models,
                   const InferenceLimits& limits = InferenceLimits(),
                   const InferenceMonitoring& monitoring = {});
  ~InferenceService() override;

  InferenceRuntime& runtime() const { return *runtime_; }
  // The runtime's, for the tests and the server.
  const InferenceLimits& limits() const { return runtime_->limits(); }
  void StartDraining() { runtime_->StartDraining(); }
  void MarkNotReady() { runtime_->MarkNotReady(); }
  int64_t requests_in_flight() const { return runtime_->requests_in_flight(); }
  int64_t pending_bytes() const { return runtime_->pending_bytes(); }
  std::vector<ModelMetrics> Metrics() const { return runtime_->Metrics(); }

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
  // Starts `request` (a ModelStreamInfer message if `streamed`) on the
  // runtime, its reply assembled in `response`.
  void StartInference(const inference::ModelInferRequest& request,
                      WireResponse& response,
                      grpc::CallbackServerContext* context, bool streamed,
                      InferenceRuntime::Done done);

  const std::shared_ptr<InferenceRuntime> runtime_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_INFERENCE_SERVICE_H_
