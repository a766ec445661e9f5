#include "server/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <climits>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/service/inference_service.h"

namespace reluserve {
namespace {

// Room for names, shapes, ids and parameters around the tensor bytes.
constexpr int64_t kEnvelopeBytes = 1 << 20;

int ClampToInt(int64_t bytes) {
  return static_cast<int>(std::min<int64_t>(bytes, INT_MAX));
}

}  // namespace

std::string HostPort(const std::string& host, int port) {
  // IPv6 literals need brackets in a gRPC address.
  const bool bare_ipv6 =
      host.find(':') != std::string::npos && host.front() != '[';
  return bare_ipv6 ? absl::StrCat("[", host, "]:", port)
                   : absl::StrCat(host, ":", port);
}

int MaxReceiveBytes(const ModelConfig& model) {
  const int64_t tensors =
      model.max_batch * (model.in_features + model.out_features) * 4;
  return ClampToInt(tensors + kEnvelopeBytes);
}

int MaxSendBytes(const ModelConfig& model) {
  const int64_t per_row = (model.in_features + model.out_features) * 4;
  const int64_t per_model = (model.in_features + 1) * model.out_features * 4;
  return ClampToInt(model.max_batch * per_row + per_model + kEnvelopeBytes);
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    Options options, std::shared_ptr<const LinearRelu> layer) {
  std::unique_ptr<Server> server(new Server());
  server->options_ = std::move(options);
  const ModelConfig& model = server->options_.model;
  server->service_ = std::make_unique<InferenceService>(
      model, std::move(layer), server->options_.scheduling);
  server->max_receive_bytes_ = MaxReceiveBytes(model);
  server->max_send_bytes_ = MaxSendBytes(model);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC would otherwise share a busy port with another process and split
  // the calls between the two.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(server->max_receive_bytes_);
  builder.SetMaxSendMessageSize(server->max_send_bytes_);
  const std::string requested =
      HostPort(server->options_.host, server->options_.port);
  builder.AddListeningPort(requested, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.RegisterService(server->service_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", requested,
                     ": the address is in use or not available here"));
  }
  return server;
}

Server::~Server() { Shutdown(std::chrono::system_clock::now()); }

std::string Server::address() const { return HostPort(options_.host, port_); }

void Server::Shutdown(std::chrono::system_clock::time_point deadline) {
  std::call_once(shutdown_once_, [&] {
    if (grpc_server_ == nullptr) return;  // never started
    service_->StartDraining();
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
    // Wait for a quiet period with nothing in flight: a call that was still
    // uploading when draining began arrives within it and is answered
    // UNAVAILABLE instead of being cancelled by gRPC's shutdown.
    constexpr auto kQuietPeriod = std::chrono::milliseconds(100);
    constexpr auto kPoll = std::chrono::milliseconds(5);
    auto quiet_since = std::chrono::steady_clock::now();
    while (std::chrono::system_clock::now() < deadline) {
      const auto now = std::chrono::steady_clock::now();
      if (service_->requests_in_flight() > 0) {
        quiet_since = now;
      } else if (now - quiet_since >= kQuietPeriod) {
        break;
      }
      std::this_thread::sleep_for(kPoll);
    }
    grpc_server_->Shutdown(deadline);
    grpc_server_->Wait();
  });
}

}  // namespace reluserve
