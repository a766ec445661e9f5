#include "server/service/inference_service.h"

#include <memory>
#include <string>
#include <utility>

#include "server/service/grpc_request.h"
#include "server/service/model_signature.h"
#include "server/service/service_messages.h"
#include "server/service/status_translation.h"

namespace reluserve {
namespace {

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

}  // namespace

InferenceService::InferenceService(std::shared_ptr<InferenceRuntime> runtime)
    : runtime_(std::move(runtime)) {}

InferenceService::InferenceService(std::vector<ServedModelSpec> models,
                                   const InferenceLimits& limits,
                                   const InferenceMonitoring& monitoring)
    : InferenceService(std::make_shared<InferenceRuntime>(
          std::move(models), limits, monitoring)) {}

InferenceService::~InferenceService() = default;

grpc::ServerUnaryReactor* InferenceService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(runtime_->ready());
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  // Like Triton: an unknown model is simply not ready.
  response->set_ready(
      runtime_->ready() &&
      runtime_->models().Find(request->name(), request->version()).ok());
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  FillServerMetadata(response);
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelMetadata(
    grpc::CallbackServerContext* context,
    const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  absl::StatusOr<ServedModel*> model =
      runtime_->models().Find(request->name(), request->version());
  if (!model.ok()) return FinishWith(context, ToGrpcStatus(model.status()));
  FillModelMetadata((*model)->config(),
                    runtime_->models().VersionsOf((*model)->config().name),
                    (*model)->signature(), response);
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelConfig(
    grpc::CallbackServerContext* context,
    const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  absl::StatusOr<ServedModel*> model =
      runtime_->models().Find(request->name(), request->version());
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
      reactor->request(), reactor->response(), context, /*streamed=*/false,
      [reactor](const absl::Status& status, InferenceRuntime::Sent sent) {
        reactor->Answer(status, std::move(sent));
      });
  return reactor;
}

grpc::ServerUnaryReactor* InferenceService::ModelStatistics(
    grpc::CallbackServerContext* context,
    const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  return FinishWith(context, ToGrpcStatus(FillModelStatistics(
                                 runtime_->models(), request->name(),
                                 request->version(), response)));
}

grpc::ServerUnaryReactor* InferenceService::RepositoryIndex(
    grpc::CallbackServerContext* context,
    const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  FillRepositoryIndex(runtime_->models(), runtime_->ready(), request->ready(),
                      response);
  return FinishWith(context, grpc::Status::OK);
}

void InferenceService::StartInference(
    const inference::ModelInferRequest& request, WireResponse& response,
    grpc::CallbackServerContext* context, bool streamed,
    InferenceRuntime::Done done) {
  RuntimeRequest neutral = ToRuntimeRequest(request, streamed);
  neutral.deadline = context->deadline();
  // The context outlives the job: the call finishes after the job's answer.
  neutral.cancelled = [context] { return context->IsCancelled(); };
  neutral.peer = [context] { return context->peer(); };
  // The reply adapter lives as long as the answer: until `done` has run.
  auto reply = std::make_shared<GrpcReply>(
      response, request.id(), runtime_->limits().max_send_bytes, streamed);
  runtime_->Start(
      std::move(neutral), *reply,
      [reply, done = std::move(done)](const absl::Status& status,
                                      InferenceRuntime::Sent sent) mutable {
        done(status, std::move(sent));
      });
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>*
InferenceService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  OrderedStreamReactor::Options options;
  options.max_pending =
      static_cast<size_t>(runtime_->limits().max_stream_pending);
  options.max_reply_bytes = runtime_->limits().max_send_bytes;
  return new OrderedStreamReactor(
      [this, context](const inference::ModelInferRequest& request,
                      WireResponse& response, OrderedStreamReactor::Done done) {
        StartInference(request, response, context, /*streamed=*/true,
                       std::move(done));
      },
      options);
}

}  // namespace reluserve
