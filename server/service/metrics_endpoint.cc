#include "server/service/metrics_endpoint.h"

#include <sys/socket.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace reluserve {
namespace {

constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& host, int port, Render render) {
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  endpoint->http_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *endpoint->http_;
  // cpp-httplib's default sets SO_REUSEPORT, with which a second server
  // would silently share a busy port; only SO_REUSEADDR here.
  http.set_socket_options([](socket_t socket) {
    int yes = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Scrapes are rare: two threads, not one per core.
  http.new_task_queue = [] { return new httplib::ThreadPool(2); };
  http.Get("/metrics", [render = std::move(render)](const httplib::Request&,
                                                    httplib::Response& res) {
    res.set_content(render(), kContentType);
  });
  const bool bound = port == 0 ? (port = http.bind_to_any_port(host)) > 0
                               : http.bind_to_port(host, port);
  if (!bound) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen for metrics on ", host, ":", port,
        " (address in use or not available); choose another --metrics-port, "
        "or 0 to turn the endpoint off"));
  }
  endpoint->port_ = port;
  endpoint->listener_ = std::thread([&http] { http.listen_after_bind(); });
  // stop() does nothing until the listener runs: wait, so that a Stop()
  // right after Start() cannot leave it listening.
  for (int wait = 0; wait < 5000 && !http.is_running(); ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return endpoint;
}

MetricsEndpoint::~MetricsEndpoint() { Stop(); }

void MetricsEndpoint::Stop() {
  if (http_ == nullptr) return;
  http_->stop();
  if (listener_.joinable()) listener_.join();
}

}  // namespace reluserve
