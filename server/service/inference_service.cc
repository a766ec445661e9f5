#include "server/service/inference_service.h"

#include <chrono>
#include <exception>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/service/ordered_stream.h"
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

InferenceService::InferenceService(ModelConfig model,
                                   std::shared_ptr<const LinearRelu> layer,
                                   const Scheduler::Options& scheduling)
    : model_(std::move(model)),
      layer_(layer),
      // Enough idle pairs for every call one machine can have computing and
      // sending; pairs above 64 MiB (N ≈ 4000 fwd+bwd) are not kept.
      message_pool_(/*max_idle=*/32, /*max_pooled_bytes=*/64 << 20),
      scheduler_(scheduling, std::move(layer), &statistics_) {
  SetMessageAllocatorFor_ModelInfer(&message_pool_);
}

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
  response->add_extensions("statistics");
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
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  StartInference(*request, *response, context->deadline(),
                 [reactor](const absl::Status& status) {
                   reactor->Finish(ToGrpcStatus(status));
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

void InferenceService::StartInference(
    const inference::ModelInferRequest& request,
    inference::ModelInferResponse& response,
    std::chrono::system_clock::time_point deadline, Done done) {
  const auto arrival = std::chrono::steady_clock::now();
  requests_in_flight_.fetch_add(1);
  auto finish = [this, &response, arrival, done = std::move(done)](
                    const absl::Status& status,
                    const InferenceStatistics::RequestPhases* phases,
                    int64_t rows) {
    const auto total = std::chrono::duration_cast<Nanoseconds>(
        std::chrono::steady_clock::now() - arrival);
    if (status.ok()) {
      statistics_.RecordSuccess(rows, total, *phases);
    } else {
      response.Clear();
      statistics_.RecordFailure(total);
    }
    done(status);
    requests_in_flight_.fetch_sub(1);
  };

  auto job = std::make_unique<InferJob>();
  absl::Status prepared;
  try {
    prepared = PrepareJob(request, response, deadline, *job);
  } catch (const std::exception& e) {
    prepared =
        absl::InternalError(absl::StrCat("unexpected error: ", e.what()));
  }
  if (!prepared.ok()) {
    finish(prepared, nullptr, 0);
    return;
  }
  job->arrival = arrival;
  job->phases.compute_input = std::chrono::duration_cast<Nanoseconds>(
      std::chrono::steady_clock::now() - arrival);
  job->done = [finish = std::move(finish)](InferJob& finished,
                                           const absl::Status& status) {
    finish(status, &finished.phases, finished.validated.batch);
  };
  scheduler_.Submit(std::move(job));
}

absl::Status InferenceService::PrepareJob(
    const inference::ModelInferRequest& request,
    inference::ModelInferResponse& response,
    std::chrono::system_clock::time_point deadline, InferJob& job) const {
  if (draining_.load()) {
    return absl::UnavailableError("server is shutting down; retry elsewhere");
  }
  absl::StatusOr<ValidatedInferRequest> validated =
      ValidateInferRequest(request, model_);
  if (!validated.ok()) return validated.status();
  job.request = &request;
  job.response = &response;
  job.deadline = deadline;
  job.validated = *std::move(validated);

  response.set_model_name(model_.name);
  response.set_model_version(model_.version);
  response.set_id(request.id());
  const int64_t n = job.validated.batch;
  const int64_t k = model_.in_features, m = model_.out_features;
  // The core writes FP32; a BF16 output is computed into staging first.
  std::vector<std::pair<float**, size_t>> staged;  // (pointer, offset)
  for (const RequestedOutput& output : job.validated.outputs) {
    float** target = nullptr;
    std::vector<int64_t> shape;
    switch (output.tensor) {
      case OutputTensor::kY:
        target = &job.y;
        shape = {n, m};
        break;
      case OutputTensor::kGradX:
        target = &job.gradients.grad_x;
        shape = job.validated.x_shape;
        break;
      case OutputTensor::kGradWeight:
        target = &job.gradients.grad_weight;
        shape = {m, k};
        break;
      case OutputTensor::kGradBias:
        target = &job.gradients.grad_bias;
        shape = {m};
        break;
    }
    size_t count = 0;
    void* bytes = AddOutput(response, output, shape, &count);
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

grpc::ServerBidiReactor<inference::ModelInferRequest,
                        inference::ModelStreamInferResponse>*
InferenceService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  const auto deadline = context->deadline();
  return new OrderedStreamReactor(
      [this, deadline](const inference::ModelInferRequest& request,
                       inference::ModelInferResponse& response,
                       OrderedStreamReactor::Done done) {
        StartInference(request, response, deadline, std::move(done));
      });
}

}  // namespace reluserve
