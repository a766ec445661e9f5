#ifndef RELUSERVE_SERVER_SERVICE_SERVER_H_
#define RELUSERVE_SERVER_SERVICE_SERVER_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/host_port.h"
#include "server/core/model.h"
#include "server/http/http_front_end.h"
#include "server/runtime/scheduler.h"
#include "server/service/access_log.h"
#include "server/service/bearer_tokens.h"
#include "server/service/grpc_call_metrics.h"
#include "server/service/inference_service.h"
#include "server/service/metrics_endpoint.h"
#include "server/service/model_config.h"
#include "server/service/served_model.h"
#include "server/service/tls_files.h"

namespace grpc {
class HealthCheckServiceInterface;
class Server;
}  // namespace grpc

namespace reluserve {

class InferenceService;

// A running server: the gRPC inference service, grpc.health.v1 and server
// reflection on one listening address, the REST front end and /metrics on
// theirs, all over one InferenceRuntime.
//
// Thread safety: Shutdown() may be called from any thread, more than once;
// the first call does the work and later ones return at once.
class Server {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 8001;  // 0 picks a free port; see port()
    // The name, version and batch limit of a single model (Start with one
    // model) and how it is scheduled.
    ModelConfig model;
    Scheduler::Options scheduling;
    // Stream and memory bounds; max_send_bytes 0 is the largest
    // MaxSendBytes of the models.
    InferenceLimits limits;
    // GET /metrics (Prometheus) on metrics_host (empty: `host`) and
    // metrics_port; 0 picks a free port, -1 turns the endpoint (and the
    // counting of gRPC calls) off.
    std::string metrics_host;
    int metrics_port = -1;
    // The REST front end (KServe v2 over HTTP/1.1) on `host` and http_port;
    // 0 picks a free port, -1 turns it off. http_threads bounds the
    // connections it serves at once.
    int http_port = -1;
    int http_threads = 32;
    DeadReluMonitor::Options dead_relu;  // window_rows 0: off
    // One line per inference request to this file ("-": standard output);
    // empty: no access log.
    std::string access_log;
    bool access_log_json = false;
    // HTTP/2 streams (calls) one connection may have open at once
    // (SETTINGS_MAX_CONCURRENT_STREAMS): bounds one client's in-flight work.
    int max_concurrent_streams = 100;
    // A connection with no call for this long is closed (GOAWAY), so idle
    // connections cannot hold file descriptors for ever; 0 keeps them.
    std::chrono::milliseconds max_connection_idle{300000};
    // GOAWAY to connections this old, and how long their calls may then
    // take (0: no age limit; no grace limit).
    std::chrono::milliseconds max_connection_age{0};
    std::chrono::milliseconds max_connection_age_grace{0};
    // Keepalive pings after this long without traffic (0: gRPC's default),
    // and how long an unanswered ping may wait before the connection closes.
    std::chrono::milliseconds keepalive_time{0};
    std::chrono::milliseconds keepalive_timeout{20000};
    // Once a drain has nothing in flight, how long the calls still open
    // are given before gRPC cancels them: idle streams and health watches,
    // which would hold the drain to its deadline, and calls still
    // uploading, which arrive and are answered UNAVAILABLE within it.
    std::chrono::milliseconds idle_call_grace{2000};
    // TLS on every listener (gRPC, REST, metrics) when enabled; mutual TLS
    // with a client CA.
    TlsFiles tls;
    // When set, every gRPC call and REST request needs one of these tokens,
    // but health and liveness/readiness (probes) and /metrics.
    std::shared_ptr<const BearerTokens> tokens;
  };

  // Binds and starts serving `models`. Fails (without serving anything)
  // when there is none, a model's messages would not fit gRPC's limit, or
  // the address is busy or cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      Options options, std::vector<ServedModelSpec> models);
  // One model, named and scheduled as options.model and options.scheduling
  // say.
  static absl::StatusOr<std::unique_ptr<Server>> Start(
      Options options, std::shared_ptr<const Model> model);

  ~Server();

  // The port actually bound.
  int port() const { return port_; }
  // The metrics endpoint's port; 0 when it is off.
  int metrics_port() const {
    return metrics_ == nullptr ? 0 : metrics_->port();
  }
  // The REST front end's port; 0 when it is off.
  int http_port() const { return http_ == nullptr ? 0 : http_->port(); }
  // What GET /metrics answers.
  std::string RenderMetrics() const;
  // "host:port" as a client would dial it.
  std::string address() const;
  // The largest request and response the server accepts and sends.
  int max_receive_bytes() const { return max_receive_bytes_; }
  int max_send_bytes() const { return max_send_bytes_; }

  // Drains, then stops: readiness and health turn false and new inference
  // calls get UNAVAILABLE (a retryable answer, where closing the listener
  // would cancel calls still uploading); calls already computing finish.
  // Once none has been in flight for a short quiet period, or `deadline`
  // passes, gRPC shuts down and cancels whatever is left.
  void Shutdown(std::chrono::system_clock::time_point deadline);

 private:
  Server() = default;
  void OnListenerFailure(const std::string& grpc_message);

  Options options_;
  int port_ = 0;
  int max_receive_bytes_ = 0;
  int max_send_bytes_ = 0;
  std::unique_ptr<AccessLog> access_log_;
  std::shared_ptr<InferenceRuntime> runtime_;
  std::unique_ptr<InferenceService> service_;
  GrpcCallCounter calls_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<MetricsEndpoint> metrics_;
  std::unique_ptr<HttpFrontEnd> http_;
  std::once_flag shutdown_once_;
  std::atomic<bool> listener_failed_{false};
  grpc::HealthCheckServiceInterface* health_ = nullptr;  // grpc_server_'s
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_SERVER_H_
