#ifndef RELUSERVE_SERVER_SERVICE_METRICS_ENDPOINT_H_
#define RELUSERVE_SERVER_SERVICE_METRICS_ENDPOINT_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

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

  // Binds host:port (0 picks a free port) and starts serving.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& host, int port, Render render);
  ~MetricsEndpoint();

  int port() const { return port_; }
  // Stops listening and waits for scrapes in progress.
  void Stop();

 private:
  MetricsEndpoint() = default;

  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_METRICS_ENDPOINT_H_
