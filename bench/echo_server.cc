// reluserve-echo-server: the transport floor. A bare gRPC server speaking the
// same Open Inference Protocol as reluserve-server that does no validation and
// no compute: each ModelInfer (or ModelStreamInfer message) is answered with a
// response of exactly the bytes ReluServe would send for that request (names,
// datatypes FP32 or BF16, shapes, sizes of raw_output_contents), the tensor
// contents left zero. Allocator settings and channel arguments match
// reluserve-server, so `reluserve-load` against both measures what the serving
// path adds on top of gRPC itself.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <string.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/allocator_tuning.h"
#include "common/command_line.h"
#include "grpc_service.grpc.pb.h"
#include "server/service/model_config.h"
#include "server/service/ordered_stream.h"
#include "server/service/server.h"
#include "server/service/stop_signals.h"
#include "spdlog/spdlog.h"

namespace {

using reluserve::ModelConfig;

struct Flags {
  std::string host = "127.0.0.1";
  int port = 8002;
  int64_t in_features = 3072;
  int64_t out_features = 100;
  int64_t max_batch = 4096;
};

using reluserve::HostPort;
using reluserve::MaxReceiveBytes;
using reluserve::MaxSendBytes;

grpc::Status InvalidArgument(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "echo: " + message);
}

// Appends an output of `shape` in `datatype` (FP32 or BF16) whose bytes are
// zeros.
template <typename Dims>
void AddOutput(inference::ModelInferResponse& response, const char* name,
               const std::string& datatype, const Dims& shape) {
  auto* tensor = response.add_outputs();
  tensor->set_name(name);
  tensor->set_datatype(datatype);
  int64_t count = 1;
  for (int64_t dim : shape) {
    tensor->add_shape(dim);
    count *= dim;
  }
  const size_t element_bytes = datatype == reluserve::kBf16 ? 2 : 4;
  response.add_raw_output_contents()->resize(static_cast<size_t>(count) *
                                             element_bytes);
}

bool IsSupportedDatatype(const std::string& datatype) {
  return datatype == reluserve::kFp32 || datatype == reluserve::kBf16;
}

// What reluserve-server answers to a valid `request`, with zero tensors:
// outputs in x's datatype unless an output's "datatype" parameter says
// otherwise. Only the checks that keep a malformed request from asking for
// an absurd allocation are made; anything else passes.
grpc::Status Echo(const inference::ModelInferRequest& request,
                  const ModelConfig& model,
                  inference::ModelInferResponse& response) {
  const inference::ModelInferRequest::InferInputTensor* x = nullptr;
  bool has_grad_y = false;
  for (const auto& input : request.inputs()) {
    if (input.name() == reluserve::kInputX) x = &input;
    if (input.name() == reluserve::kInputGradY) has_grad_y = true;
  }
  if (x == nullptr || x->shape_size() < 2 ||
      !IsSupportedDatatype(x->datatype())) {
    return InvalidArgument("expected input 'x', FP32 or BF16 [N, ...]");
  }
  const int64_t n = x->shape(0);
  int64_t x_count = 1;
  for (int64_t dim : x->shape()) {
    if (dim < 0 || __builtin_mul_overflow(x_count, dim, &x_count)) {
      x_count = -1;
      break;
    }
  }
  if (n < 1 || n > model.max_batch || x_count != n * model.in_features) {
    return InvalidArgument("input 'x' has a shape this model does not take");
  }

  response.set_model_name(model.name);
  response.set_model_version(model.version);
  response.set_id(request.id());
  const int64_t k = model.in_features, m = model.out_features;
  const int64_t y_shape[] = {n, m}, weight_shape[] = {m, k}, bias_shape[] = {m};
  auto add = [&](const std::string& name, const std::string& datatype) {
    if (name == reluserve::kOutputY) {
      AddOutput(response, reluserve::kOutputY, datatype, y_shape);
    } else if (name == reluserve::kOutputGradX) {
      AddOutput(response, reluserve::kOutputGradX, datatype, x->shape());
    } else if (name == reluserve::kOutputGradWeight) {
      AddOutput(response, reluserve::kOutputGradWeight, datatype, weight_shape);
    } else if (name == reluserve::kOutputGradBias) {
      AddOutput(response, reluserve::kOutputGradBias, datatype, bias_shape);
    } else {
      return false;
    }
    return true;
  };
  if (request.outputs_size() == 0) {
    add(reluserve::kOutputY, x->datatype());
    if (has_grad_y) {
      add(reluserve::kOutputGradX, x->datatype());
      add(reluserve::kOutputGradWeight, x->datatype());
      add(reluserve::kOutputGradBias, x->datatype());
    }
    return grpc::Status::OK;
  }
  for (const auto& requested : request.outputs()) {
    const auto parameter =
        requested.parameters().find(reluserve::kDatatypeParameter);
    const std::string& datatype = parameter == requested.parameters().end()
                                      ? x->datatype()
                                      : parameter->second.string_param();
    if (!IsSupportedDatatype(datatype) || !add(requested.name(), datatype)) {
      response.Clear();
      return InvalidArgument("cannot return output '" + requested.name() +
                             "' as '" + datatype + "'");
    }
  }
  return grpc::Status::OK;
}

// ModelStatistics is left UNIMPLEMENTED: the floor has no phases to report.
//
// Thread safety: immutable after construction; gRPC calls it from many
// threads at once.
class EchoService final : public reluserve::OrderedStreamCallbackService {
 public:
  explicit EchoService(reluserve::ModelConfig model)
      : model_(std::move(model)) {}

  grpc::ServerUnaryReactor* ServerLive(
      grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
      inference::ServerLiveResponse* response) override {
    response->set_live(true);
    return FinishWith(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ServerReady(
      grpc::CallbackServerContext* context,
      const inference::ServerReadyRequest*,
      inference::ServerReadyResponse* response) override {
    response->set_ready(true);
    return FinishWith(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelReady(
      grpc::CallbackServerContext* context,
      const inference::ModelReadyRequest* request,
      inference::ModelReadyResponse* response) override {
    response->set_ready(request->name() == model_.name);
    return FinishWith(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* context,
      const inference::ServerMetadataRequest*,
      inference::ServerMetadataResponse* response) override {
    response->set_name("reluserve-echo");
    response->set_version("0");
    return FinishWith(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest*,
      inference::ModelMetadataResponse* response) override {
    const int64_t k = model_.in_features, m = model_.out_features;
    response->set_name(model_.name);
    response->add_versions(model_.version);
    response->set_platform("echo");
    AddTensor(response->mutable_inputs(), reluserve::kInputX, {-1, k});
    AddTensor(response->mutable_inputs(), reluserve::kInputGradY, {-1, m});
    AddTensor(response->mutable_outputs(), reluserve::kOutputY, {-1, m});
    AddTensor(response->mutable_outputs(), reluserve::kOutputGradX, {-1, k});
    AddTensor(response->mutable_outputs(), reluserve::kOutputGradWeight,
              {m, k});
    AddTensor(response->mutable_outputs(), reluserve::kOutputGradBias, {m});
    return FinishWith(context, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ModelInfer(
      grpc::CallbackServerContext* context,
      const inference::ModelInferRequest* request,
      inference::ModelInferResponse* response) override {
    return FinishWith(context, Echo(*request, model_, *response));
  }

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ModelStreamInfer(
      grpc::CallbackServerContext*) override {
    // The server's stream machinery, with the echo in place of inference.
    const reluserve::ModelConfig* model = &model_;
    reluserve::OrderedStreamReactor::Options options;
    options.max_reply_bytes = MaxSendBytes(model_);
    return new reluserve::OrderedStreamReactor(
        [model](const inference::ModelInferRequest& request,
                inference::ModelInferResponse& response,
                reluserve::OrderedStreamReactor::Done done) {
          const grpc::Status status = Echo(request, *model, response);
          done(status.ok() ? absl::OkStatus()
                           : absl::Status(static_cast<absl::StatusCode>(
                                              status.error_code()),
                                          status.error_message()),
               nullptr);
        },
        options);
  }

 private:
  static grpc::ServerUnaryReactor* FinishWith(
      grpc::CallbackServerContext* context, const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }

  static void AddTensor(
      google::protobuf::RepeatedPtrField<
          inference::ModelMetadataResponse::TensorMetadata>* tensors,
      const char* name, std::initializer_list<int64_t> shape) {
    auto* tensor = tensors->Add();
    tensor->set_name(name);
    tensor->set_datatype(reluserve::kFp32);
    for (int64_t dim : shape) tensor->add_shape(dim);
  }

  const reluserve::ModelConfig model_;
};

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{
      "reluserve-echo-server: the transport floor. Answers ModelInfer with "
      "the bytes reluserve-server would send, computing nothing",
      "reluserve-echo-server"};
  app.add_option("--host", flags.host, "Address to listen on")
      ->capture_default_str();
  app.add_option("--port", flags.port, "Port to listen on (0 picks one)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--in-features", flags.in_features, "K")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app.add_option("--out-features", flags.out_features, "M")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app.add_option("--max-batch", flags.max_batch,
                 "Largest batch N accepted; sets the gRPC message limits")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  reluserve::AddVersionFlag(app, "reluserve-echo-server");
  if (std::optional<int> exit_status =
          reluserve::ParseCommandLine(app, argc, argv)) {
    return *exit_status;
  }

  reluserve::StopSignals stop_signals;  // before any thread starts
  // The same allocator settings as reluserve-server: an untuned floor pays
  // page faults on every call and would flatter the server.
  reluserve::KeepLargeBuffersAcrossCalls();

  ModelConfig model;
  model.in_features = flags.in_features;
  model.out_features = flags.out_features;
  model.max_batch = flags.max_batch;
  EchoService service(model);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(MaxReceiveBytes(model));
  builder.SetMaxSendMessageSize(MaxSendBytes(model));
  int port = 0;
  const std::string requested = HostPort(flags.host, flags.port);
  builder.AddListeningPort(requested, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::critical(
        "cannot listen on {}: the address is in use or not "
        "available here",
        requested);
    return reluserve::kExitFailed;
  }
  spdlog::info(
      "echo floor for model {} v{}: K={} M={}, max batch {} (messages up to "
      "{} MiB in, {} MiB out); no compute",
      model.name, model.version, model.in_features, model.out_features,
      model.max_batch, MaxReceiveBytes(model) >> 20, MaxSendBytes(model) >> 20);
  spdlog::info("listening on {}", HostPort(flags.host, port));

  const int received = stop_signals.Wait();
  spdlog::info("{} received: stopping", strsignal(received));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  spdlog::info("stopped");
  return 0;
}
