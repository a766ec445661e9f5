#include "server/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <climits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/host_port.h"
#include "server/service/grpc_logging.h"
#include "server/service/grpc_security.h"
#include "server/service/inference_service.h"
#include "spdlog/spdlog.h"

namespace reluserve {
namespace {

// Says what to do instead of gRPC's raw error dump, which names the cause
// deep inside a nested description.
absl::Status BindError(const std::string& address, int port,
                       const std::vector<std::string>& grpc_log) {
  const auto mentions = [&grpc_log](absl::string_view text) {
    return std::any_of(grpc_log.begin(), grpc_log.end(),
                       [text](const std::string& line) {
                         return absl::StrContains(line, text);
                       });
  };
  if (mentions("Address already in use")) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address, ": port ", port,
        " is already in use by another process (another reluserve-server?). "
        "Stop it, choose another port with --port N, or pass --port 0 to "
        "take a free one (the port is logged)"));
  }
  if (mentions("Cannot assign requested address") ||
      mentions("Address not available")) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address,
        ": no interface of this machine has that address; use --host "
        "127.0.0.1, or 0.0.0.0 / :: for every interface"));
  }
  if (mentions("Permission denied")) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address,
                     ": permission denied (ports below "
                     "1024 need privileges); choose --port 1024 or above"));
  }
  std::string detail = absl::StrJoin(grpc_log, "; ");
  return absl::UnavailableError(absl::StrCat(
      "cannot listen on ", address, detail.empty() ? "" : ": ", detail));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    Options options, std::shared_ptr<const Model> model) {
  ServedModelSpec spec{options.model, std::move(model), options.scheduling};
  std::vector<ServedModelSpec> models;
  models.push_back(std::move(spec));
  return Start(std::move(options), std::move(models));
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    Options options, std::vector<ServedModelSpec> models) {
  if (models.empty()) {
    return absl::InvalidArgumentError("no model to serve");
  }
  std::unique_ptr<Server> server(new Server());
  for (const ServedModelSpec& model : models) {
    if (absl::Status fits = CheckMessageLimits(model); !fits.ok()) {
      return fits;
    }
    server->max_receive_bytes_ =
        std::max(server->max_receive_bytes_, MaxReceiveBytes(model));
    server->max_send_bytes_ =
        std::max(server->max_send_bytes_, MaxSendBytes(model));
  }
  server->options_ = std::move(options);
  std::optional<TlsPems> tls;
  if (server->options_.tls.enabled()) {
    absl::StatusOr<TlsPems> pems = ReadTlsFiles(server->options_.tls);
    if (!pems.ok()) return pems.status();
    tls = *std::move(pems);
  }
  InferenceMonitoring monitoring;
  monitoring.dead_relu = server->options_.dead_relu;
  if (!server->options_.access_log.empty()) {
    absl::StatusOr<std::unique_ptr<AccessLog>> log = AccessLog::Open(
        server->options_.access_log, server->options_.access_log_json);
    if (!log.ok()) return log.status();
    server->access_log_ = *std::move(log);
    monitoring.access_log = server->access_log_.get();
  }
  // One runtime under every front end.
  server->runtime_ = std::make_shared<InferenceRuntime>(
      std::move(models), server->options_.limits, monitoring);
  server->service_ = std::make_unique<InferenceService>(server->runtime_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC would otherwise share a busy port with another process and split
  // the calls between the two.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(server->max_receive_bytes_);
  builder.SetMaxSendMessageSize(server->max_send_bytes_);
  const Options& o = server->options_;
  const auto milliseconds = [](std::chrono::milliseconds duration) {
    return static_cast<int>(std::min<int64_t>(duration.count(), INT_MAX));
  };
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             std::max(1, o.max_concurrent_streams));
  if (o.max_connection_idle.count() > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                               milliseconds(o.max_connection_idle));
  }
  if (o.max_connection_age.count() > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               milliseconds(o.max_connection_age));
  }
  if (o.max_connection_age_grace.count() > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               milliseconds(o.max_connection_age_grace));
  }
  if (o.keepalive_time.count() > 0) {
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                               milliseconds(o.keepalive_time));
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                               milliseconds(o.keepalive_timeout));
    // Ping idle connections too: they are the ones a dead peer leaves.
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  }
  const std::string requested =
      HostPort(server->options_.host, server->options_.port);
  builder.AddListeningPort(
      requested, MakeGrpcServerCredentials(tls ? &*tls : nullptr, o.tokens),
      &server->port_);
  builder.RegisterService(server->service_.get());
  if (o.metrics_port >= 0) {
    std::vector<
        std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(MakeCallCountingInterceptorFactory(&server->calls_));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  GrpcLogCapture bind_log;
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return BindError(requested, server->options_.port, bind_log.Take());
  }
  server->health_ = server->grpc_server_->GetHealthCheckService();
  if (o.metrics_port >= 0) {
    Server* raw = server.get();
    absl::StatusOr<std::unique_ptr<MetricsEndpoint>> metrics =
        MetricsEndpoint::Start(
            o.metrics_host.empty() ? o.host : o.metrics_host, o.metrics_port,
            [raw] { return raw->RenderMetrics(); }, o.tls);
    if (!metrics.ok()) {
      server->grpc_server_->Shutdown(std::chrono::system_clock::now());
      server->grpc_server_->Wait();
      server->grpc_server_.reset();
      return metrics.status();
    }
    server->metrics_ = *std::move(metrics);
  }
  if (o.http_port >= 0) {
    HttpFrontEnd::Options http;
    http.host = o.host;
    http.port = o.http_port;
    http.threads = o.http_threads;
    http.max_receive_bytes = server->max_receive_bytes_;
    http.tls = o.tls;
    http.tokens = o.tokens;
    absl::StatusOr<std::unique_ptr<HttpFrontEnd>> front_end =
        HttpFrontEnd::Start(http, server->runtime_);
    if (!front_end.ok()) {
      server->Shutdown(std::chrono::system_clock::now());
      return front_end.status();
    }
    server->http_ = *std::move(front_end);
  }
  server->health_->SetServingStatus(true);
  Server* raw = server.get();
  SetGrpcListenerFailureHandler([raw](const std::string& grpc_message) {
    raw->OnListenerFailure(grpc_message);
  });
  return server;
}

Server::~Server() {
  SetGrpcListenerFailureHandler(nullptr);
  Shutdown(std::chrono::system_clock::now());
}

// Runs when the process has no file descriptor left. UBSan's dynamic-type
// check opens a pipe to probe an object it has not seen before, fails for
// want of a descriptor and reports a valid object as invalid: not checked
// here. (Start() has made the calls Shutdown() makes, which UBSan then
// remembers.)
__attribute__((no_sanitize("vptr"))) void Server::OnListenerFailure(
    const std::string& grpc_message) {
  if (listener_failed_.exchange(true)) return;
  spdlog::critical(
      "{} no longer accepts connections (gRPC: {}); readiness and health are "
      "now false. Calls on open connections still work. Restart the server, "
      "and raise its open-file limit (ulimit -n, systemd LimitNOFILE) or "
      "lower --max-connection-idle-ms",
      address(), grpc_message);
  service_->MarkNotReady();
  health_->SetServingStatus(false);
}

std::string Server::address() const { return HostPort(options_.host, port_); }

std::string Server::RenderMetrics() const {
  return reluserve::RenderMetrics(service_->Metrics(), calls_);
}

void Server::Shutdown(std::chrono::system_clock::time_point deadline) {
  std::call_once(shutdown_once_, [&] {
    if (grpc_server_ == nullptr) return;  // never started
    service_->StartDraining();
    health_->SetServingStatus(false);
    // Wait for a quiet period with nothing in flight: a call that was still
    // uploading when draining began arrives within it and is answered
    // UNAVAILABLE instead of being cancelled by gRPC's shutdown (gRPC cancels
    // every call whose message is still arriving when it shuts down, grace or
    // not). 100 ms was too short on a loaded 2-core CI machine: a 3 MB upload
    // starved past it and was cancelled.
    constexpr auto kQuietPeriod = std::chrono::milliseconds(500);
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
    // What is left are idle streams and health watches, which would hold
    // the shutdown until the deadline, and calls that are still arriving,
    // which are answered UNAVAILABLE within the grace.
    grpc_server_->Shutdown(std::min(
        deadline, std::chrono::system_clock::now() + options_.idle_call_grace));
    grpc_server_->Wait();
    // Last (a scrape during the drain still sees the server), and both at
    // once: each waits for its idle keep-alive connections to time out.
    if (http_ != nullptr) http_->RequestStop();
    if (metrics_ != nullptr) metrics_->RequestStop();
    if (http_ != nullptr) http_->Stop();
    if (metrics_ != nullptr) metrics_->Stop();
  });
}

}  // namespace reluserve
