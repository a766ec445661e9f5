#ifndef RELUSERVE_SERVER_SERVICE_METRICS_ENDPOINT_H_
#define RELUSERVE_SERVER_SERVICE_METRICS_ENDPOINT_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/service/http_listener.h"

namespace reluserve {

// GET /metrics over HTTP/1.1 (cpp-httplib), answered with what `render`
// returns, in Prometheus' text format. Anything else is a 404.
//
// Thread safety: `render` is called on the endpoint's threads, one call per
// scrape, possibly concurrently. Stop() is called from one thread (it may
// be called again, from the same thread or after the first returned).
class MetricsEndpoint {
 public:
  using Render = std::function<std::string()>;

  // Binds host:port (0 picks a free port) and starts serving, over HTTPS
  // when `tls` is enabled. No token is asked for (as in Triton).
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& host, int port, Render render,
      const TlsFiles& tls = {});

  int port() const { return listener_->port(); }
  // Stops listening and waits for scrapes in progress; RequestStop() only
  // asks (see HttpListener).
  void RequestStop() { listener_->RequestStop(); }
  void Stop() { listener_->Stop(); }

 private:
  MetricsEndpoint() = default;

  std::unique_ptr<HttpListener> listener_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_METRICS_ENDPOINT_H_
