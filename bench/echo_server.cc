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
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "common/allocator_tuning.h"
#include "common/command_line.h"
#include "common/host_port.h"
#include "grpc_service.grpc.pb.h"
#include "server/core/sequential_model.h"
#include "server/core/weights.h"
#include "server/runtime/request_validation.h"
#include "server/service/grpc_request.h"
#include "server/service/model_signature.h"
#include "server/service/ordered_stream.h"
#include "server/service/served_model.h"
#include "server/service/status_translation.h"
#include "server/service/stop_signals.h"
#include "spdlog/spdlog.h"

namespace {

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
using reluserve::ServedModelSpec;

// What reluserve-server answers to a valid `request`, with zero tensors:
// the outputs the runtime's validation lays out (names, datatypes, shapes),
// so both servers send the same bytes. (The validation is the server's own:
// this floor still parses; a bare echo is issue 10's.)
grpc::Status Echo(const inference::ModelInferRequest& request,
                  const ServedModelSpec& model,
                  inference::ModelInferResponse& response) {
  absl::StatusOr<reluserve::InferenceRequest> neutral =
      reluserve::FromModelInferRequest(request);
  if (!neutral.ok()) return reluserve::ToGrpcStatus(neutral.status());
  const reluserve::ModelSignature& signature = model.model->signature();
  absl::StatusOr<reluserve::ValidatedRequest> validated =
      reluserve::ValidateRequest(*neutral, signature, model.config.max_batch);
  if (!validated.ok()) return reluserve::ToGrpcStatus(validated.status());
  response.set_model_name(model.config.name);
  response.set_model_version(model.config.version);
  response.set_id(request.id());
  for (const reluserve::ValidatedRequest::Output& output : validated->outputs) {
    reluserve::AppendOutput(
        response, signature.outputs[static_cast<size_t>(output.index)].name,
        output);
  }
  return grpc::Status::OK;
}

// ModelStatistics is left UNIMPLEMENTED: the floor has no phases to report.
//
// Thread safety: immutable after construction; gRPC calls it from many
// threads at once.
class EchoService final : public reluserve::OrderedStreamCallbackService {
 public:
  explicit EchoService(ServedModelSpec model) : model_(std::move(model)) {}

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
    response->set_ready(request->name() == model_.config.name);
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
    reluserve::FillModelMetadata(model_.config, {model_.config.version},
                                 model_.model->signature(), response);
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
    const ServedModelSpec* model = &model_;
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

  const ServedModelSpec model_;
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
  app.add_option("--in-features", flags.in_features,
                 "in_features of the layer whose replies are echoed")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app.add_option("--out-features", flags.out_features,
                 "out_features of the layer whose replies are echoed")
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

  // The default model's signature: one Linear+ReLU of these sizes.
  ServedModelSpec model;
  model.config.max_batch = flags.max_batch;
  reluserve::SequentialLayerSpec layer;
  layer.weights =
      reluserve::MakeDefaultWeights(flags.in_features, flags.out_features, 1);
  absl::StatusOr<std::unique_ptr<reluserve::SequentialModel>> built =
      reluserve::SequentialModel::Create({layer});
  if (!built.ok()) {
    spdlog::critical("{}", std::string(built.status().message()));
    return reluserve::kExitFailed;
  }
  const std::string description = (*built)->Describe();
  model.model = std::move(*built);
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
      "echo floor for model {} v{}: {}, max batch {} (messages up to {} MiB "
      "in, {} MiB out); no compute",
      model.config.name, model.config.version, description,
      model.config.max_batch, MaxReceiveBytes(model) >> 20,
      MaxSendBytes(model) >> 20);
  spdlog::info("listening on {}", HostPort(flags.host, port));

  const int received = stop_signals.Wait();
  spdlog::info("{} received: stopping", strsignal(received));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  spdlog::info("stopped");
  return 0;
}
