// reluserve-echo-server: the transport floor. A gRPC server speaking the
// same Open Inference Protocol as reluserve-server that computes nothing.
// Two floors:
// - bare (the default): never parses a request. Every reply was built at
//   start-up with the exact bytes reluserve-server would send (EchoReplies,
//   matched by the request's length); a call only shares its slices.
// - parse: parses and validates every request as the server does and
//   builds a zero-filled reply per call: the serving path's parse, checks and
//   reply allocation without the compute.
// Allocator settings and channel arguments match reluserve-server, so
// `reluserve-load` against each measures what the serving path adds on top
// of gRPC itself.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <string.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/echo_replies.h"
#include "bench/echo_stream.h"
#include "common/allocator_tuning.h"
#include "common/command_line.h"
#include "common/host_port.h"
#include "server/model_loading.h"
#include "server/runtime/request_validation.h"
#include "server/server_flags.h"
#include "server/service/callback_service.h"
#include "server/service/grpc_request.h"
#include "server/service/model_signature.h"
#include "server/service/ordered_stream.h"
#include "server/service/served_model.h"
#include "server/service/status_translation.h"
#include "server/service/stop_signals.h"
#include "server/service/wire_response.h"
#include "spdlog/spdlog.h"

namespace {

enum class Floor { kBare, kParse };

struct Flags {
  reluserve::ServerFlags model;  // host, port and the model flags only
  Floor floor = Floor::kBare;
  std::vector<int64_t> batches = {1, 100};
};

using reluserve::HostPort;
using reluserve::MaxReceiveBytes;
using reluserve::MaxSendBytes;
using reluserve::ServedModelSpec;

// The parse floor's answer: what reluserve-server answers to a valid
// `request`, with zero tensors, found by the server's own conversion and
// validation and allocated and zero-filled per call.
absl::Status ParseAndEcho(const inference::ModelInferRequest& request,
                          const ServedModelSpec& model,
                          reluserve::WireResponse& response) {
  absl::StatusOr<reluserve::InferenceRequest> neutral =
      reluserve::FromModelInferRequest(request);
  if (!neutral.ok()) return neutral.status();
  const reluserve::ModelSignature& signature = model.model->signature();
  absl::StatusOr<reluserve::ValidatedRequest> validated =
      reluserve::ValidateRequest(*neutral, signature, model.config.max_batch);
  if (!validated.ok()) return validated.status();
  response.SetHeader(model.config.name, model.config.version, request.id());
  for (const reluserve::ValidatedRequest::Output& output : validated->outputs) {
    void* bytes = response.AddOutput(
        signature.outputs[static_cast<size_t>(output.index)].name, output);
    std::memset(
        bytes, 0,
        static_cast<size_t>(output.count) * ElementBytes(output.precision));
  }
  return absl::OkStatus();
}

// ModelConfig and ModelStatistics are left UNIMPLEMENTED: the floor has no
// scheduling or phases to report.
//
// Thread safety: immutable after construction; gRPC calls it from many
// threads at once.
class EchoService final : public reluserve::InferenceCallbackService {
 public:
  EchoService(ServedModelSpec model, Floor floor,
              std::optional<reluserve::EchoReplies> replies)
      : model_(std::move(model)), floor_(floor), replies_(std::move(replies)) {}

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

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override {
    if (floor_ == Floor::kBare) {
      if (replies_->Reply(*request, /*streamed=*/false, response)) {
        return FinishWith(context, grpc::Status::OK);
      }
      return FinishWith(context, Unmatched());
    }
    inference::ModelInferRequest parsed;
    grpc::ByteBuffer bytes(*request);
    if (!grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(
             &bytes, &parsed)
             .ok()) {
      return FinishWith(context,
                        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                     "not an inference.ModelInferRequest"));
    }
    reluserve::WireResponse wire;
    const absl::Status status = ParseAndEcho(parsed, model_, wire);
    if (status.ok()) *response = wire.Release(/*streamed=*/false);
    return FinishWith(context, reluserve::ToGrpcStatus(status));
  }

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ModelStreamInfer(
      grpc::CallbackServerContext*) override {
    if (floor_ == Floor::kBare) {
      return new reluserve::BareEchoStream(
          [this](const grpc::ByteBuffer& request, grpc::ByteBuffer* reply) {
            return replies_->Reply(request, /*streamed=*/true, reply);
          },
          Unmatched().error_message());
    }
    // The server's stream machinery, with the echo in place of inference.
    const ServedModelSpec* model = &model_;
    reluserve::OrderedStreamReactor::Options options;
    options.max_reply_bytes = MaxSendBytes(model_);
    return new reluserve::OrderedStreamReactor(
        [model](const inference::ModelInferRequest& request,
                reluserve::WireResponse& response,
                reluserve::OrderedStreamReactor::Done done) {
          done(ParseAndEcho(request, *model, response), nullptr);
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

  grpc::Status Unmatched() const {
    return grpc::Status(
        grpc::StatusCode::UNIMPLEMENTED,
        absl::StrCat("the bare floor answers only the requests reluserve-load "
                     "sends, without parsing them; its prebuilt replies are "
                     "for: ",
                     replies_->Known(),
                     " (--batches adds batch sizes, --floor parse answers "
                     "any valid request)"));
  }

  const ServedModelSpec model_;
  const Floor floor_;
  const std::optional<reluserve::EchoReplies> replies_;  // bare only
};

void DefineFlags(CLI::App& app, Flags& flags) {
  reluserve::ServerFlags& model = flags.model;
  model.port = 8002;
  app.add_option("--host", model.host, "Address to listen on")
      ->capture_default_str();
  app.add_option("--port", model.port, "Port to listen on (0 picks one)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  const std::map<std::string, Floor> floors = {{"bare", Floor::kBare},
                                               {"parse", Floor::kParse}};
  app.add_option("--floor", flags.floor,
                 "bare: replies prebuilt at start-up, requests never parsed; "
                 "parse: each request parsed and validated, its reply "
                 "allocated and zero-filled")
      ->transform(CLI::CheckedTransformer(floors, CLI::ignore_case))
      ->default_str("bare");
  app.add_option("--batches", flags.batches,
                 "Batch sizes N the bare floor prebuilds replies for")
      ->delimiter(',')
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--weights", model.weights_file,
                 "The model whose replies are echoed, as reluserve-server "
                 "loads it (.safetensors or .npz)");
  app.add_option("--weights-prefix", model.weights_prefix,
                 "Name prefix of the model inside the file");
  app.add_option("--layers", model.layers,
                 "The Sequential's module list, as reluserve-server takes it");
  app.add_option("--in-features", model.in_features,
                 "in_features of the default layer (no weights file)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app.add_option("--out-features", model.out_features,
                 "out_features of the default layer (no weights file)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app.add_option("--max-batch", model.max_batch,
                 "Largest batch N accepted; sets the gRPC message limits")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{
      "reluserve-echo-server: the transport floor. Answers ModelInfer with "
      "the bytes reluserve-server would send, computing nothing",
      "reluserve-echo-server"};
  DefineFlags(app, flags);
  reluserve::AddVersionFlag(app, "reluserve-echo-server");
  if (std::optional<int> exit_status =
          reluserve::ParseCommandLine(app, argc, argv)) {
    return *exit_status;
  }

  reluserve::StopSignals stop_signals;  // before any thread starts
  // The same allocator settings as reluserve-server: an untuned floor pays
  // page faults on every call and would flatter the server.
  reluserve::KeepLargeBuffersAcrossCalls();

  absl::StatusOr<std::vector<reluserve::LoadedModel>> loaded =
      reluserve::LoadModels(flags.model, reluserve::ServerOptions(flags.model));
  if (!loaded.ok()) {
    spdlog::critical("{}", std::string(loaded.status().message()));
    return reluserve::kExitFailed;
  }
  const ServedModelSpec model = loaded->front().spec;
  std::optional<reluserve::EchoReplies> replies;
  if (flags.floor == Floor::kBare) {
    absl::StatusOr<reluserve::EchoReplies> built =
        reluserve::EchoReplies::Create(model, flags.batches);
    if (!built.ok()) {
      spdlog::critical("cannot prebuild the replies: {}",
                       std::string(built.status().message()));
      return reluserve::kExitFailed;
    }
    replies = *std::move(built);
  }
  EchoService service(model, flags.floor, std::move(replies));

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(MaxReceiveBytes(model));
  builder.SetMaxSendMessageSize(MaxSendBytes(model));
  int port = 0;
  const std::string requested = HostPort(flags.model.host, flags.model.port);
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
      "{} echo floor, no compute, for {} (messages up to {} MiB in, {} MiB "
      "out)",
      flags.floor == Floor::kBare ? "bare" : "parsing",
      loaded->front().description, MaxReceiveBytes(model) >> 20,
      MaxSendBytes(model) >> 20);
  spdlog::info("listening on {}", HostPort(flags.model.host, port));

  const int received = stop_signals.Wait();
  spdlog::info("{} received: stopping", strsignal(received));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  server->Wait();
  spdlog::info("stopped");
  return 0;
}
