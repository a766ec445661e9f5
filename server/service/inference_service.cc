#include "server/service/inference_service.h"

#include <chrono>
#include <exception>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/service/request_validation.h"
#include "server/service/status_translation.h"

#ifndef RELUSERVE_VERSION
#define RELUSERVE_VERSION "unknown"
#endif

namespace reluserve {
namespace {

constexpr char kServerName[] = "reluserve";
constexpr char kPlatform[] = "onednn_linear_relu";

grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* context,
                                     const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

void AddTensorMetadata(
    google::protobuf::RepeatedPtrField<
        inference::ModelMetadataResponse::TensorMetadata>* tensors,
    const char* name, std::initializer_list<int64_t> shape) {
  auto* tensor = tensors->Add();
  tensor->set_name(name);
  tensor->set_datatype(kFp32);
  for (int64_t dim : shape) tensor->add_shape(dim);
}

// Appends an FP32 output of `shape` to the response and returns where its
// values go: the response's own bytes, so the core writes them in place.
float* AddOutput(inference::ModelInferResponse& response, OutputTensor output,
                 const std::vector<int64_t>& shape) {
  auto* tensor = response.add_outputs();
  tensor->set_name(std::string(OutputName(output)));
  tensor->set_datatype(kFp32);
  int64_t count = 1;
  for (int64_t dim : shape) {
    tensor->add_shape(dim);
    count *= dim;
  }
  std::string* bytes = response.add_raw_output_contents();
  bytes->resize(static_cast<size_t>(count) * sizeof(float));
  return reinterpret_cast<float*>(bytes->data());
}

}  // namespace

InferenceService::InferenceService(ModelConfig model,
                                   std::shared_ptr<const LinearRelu> layer)
    : model_(std::move(model)), layer_(std::move(layer)) {}

grpc::ServerUnaryReactor* InferenceService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(!draining_.load());
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelReady(
    grpc::CallbackServerContext* context,
    const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  // Like Triton: an unknown model is simply not ready.
  response->set_ready(
      !draining_.load() &&
      CheckModelSelected(request->name(), request->version(), model_).ok());
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ServerMetadata(
    grpc::CallbackServerContext* context,
    const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name(kServerName);
  response->set_version(RELUSERVE_VERSION);
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
  const int64_t k = model_.in_features, m = model_.out_features;
  response->set_name(model_.name);
  response->add_versions(model_.version);
  response->set_platform(kPlatform);
  AddTensorMetadata(response->mutable_inputs(), kInputX, {-1, k});
  AddTensorMetadata(response->mutable_inputs(), kInputGradY, {-1, m});
  AddTensorMetadata(response->mutable_outputs(), kOutputY, {-1, m});
  AddTensorMetadata(response->mutable_outputs(), kOutputGradX, {-1, k});
  AddTensorMetadata(response->mutable_outputs(), kOutputGradWeight, {m, k});
  AddTensorMetadata(response->mutable_outputs(), kOutputGradBias, {m});
  return FinishWith(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* InferenceService::ModelInfer(
    grpc::CallbackServerContext* context,
    const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  calls_in_flight_.fetch_add(1);
  absl::Status status;
  try {
    status = Infer(*context, *request, *response);
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("unexpected error: ", e.what()));
  } catch (...) {
    status = absl::InternalError("unexpected error");
  }
  if (!status.ok()) response->Clear();
  grpc::ServerUnaryReactor* reactor = FinishWith(context, ToGrpcStatus(status));
  calls_in_flight_.fetch_sub(1);
  return reactor;
}

absl::Status InferenceService::Infer(
    const grpc::CallbackServerContext& context,
    const inference::ModelInferRequest& request,
    inference::ModelInferResponse& response) const {
  if (draining_.load()) {
    return absl::UnavailableError("server is shutting down; retry elsewhere");
  }
  absl::StatusOr<ValidatedInferRequest> validated =
      ValidateInferRequest(request, model_);
  if (!validated.ok()) return validated.status();
  // Compute nobody can receive is wasted on a busy server.
  if (context.deadline() < std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError("deadline passed before compute");
  }

  response.set_model_name(model_.name);
  response.set_model_version(model_.version);
  response.set_id(request.id());
  const int64_t n = validated->batch;
  const int64_t k = model_.in_features, m = model_.out_features;
  float* y = nullptr;
  GradientOutputs gradients;
  for (OutputTensor output : validated->outputs) {
    switch (output) {
      case OutputTensor::kY:
        y = AddOutput(response, output, {n, m});
        break;
      case OutputTensor::kGradX:
        gradients.grad_x = AddOutput(response, output, validated->x_shape);
        break;
      case OutputTensor::kGradWeight:
        gradients.grad_weight = AddOutput(response, output, {m, k});
        break;
      case OutputTensor::kGradBias:
        gradients.grad_bias = AddOutput(response, output, {m});
        break;
    }
  }
  if (validated->NeedsBackward()) {
    return layer_->ForwardBackward(n, validated->x, validated->grad_y, y,
                                   gradients);
  }
  return layer_->Forward(n, validated->x, y);
}

}  // namespace reluserve
