#include "server/service/metrics_endpoint.h"

#include <utility>

#include "httplib.h"

namespace reluserve {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& host, int port, Render render, const TlsFiles& tls) {
  absl::StatusOr<std::unique_ptr<httplib::Server>> made =
      HttpListener::NewServer(tls);
  if (!made.ok()) return made.status();
  std::unique_ptr<httplib::Server> http = *std::move(made);
  // Scrapes are rare: two threads, not one per core.
  http->new_task_queue = [] { return new httplib::ThreadPool(2); };
  // A scraper's idle connection would hold the shutdown this long.
  http->set_keep_alive_timeout(1);
  http->Get("/metrics", [render = std::move(render)](const httplib::Request&,
                                                     httplib::Response& res) {
    res.set_content(render(), kContentType);
  });
  absl::StatusOr<std::unique_ptr<HttpListener>> listener = HttpListener::Start(
      std::move(http), host, port, "metrics", "--metrics-port");
  if (!listener.ok()) return listener.status();
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  endpoint->listener_ = *std::move(listener);
  return endpoint;
}

}  // namespace reluserve
