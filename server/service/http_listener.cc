#include "server/service/http_listener.h"

#include <sys/socket.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace reluserve {

absl::StatusOr<std::unique_ptr<httplib::Server>> HttpListener::NewServer(
    const TlsFiles& tls) {
  if (!tls.enabled()) return std::make_unique<httplib::Server>();
  auto https = std::make_unique<httplib::SSLServer>(
      tls.cert_file.c_str(), tls.key_file.c_str(),
      tls.mutual() ? tls.client_ca_file.c_str() : nullptr);
  if (!https->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "OpenSSL refused --tls-cert ", tls.cert_file, ", --tls-key ",
        tls.key_file,
        tls.mutual() ? absl::StrCat(" or --tls-client-ca ", tls.client_ca_file)
                     : std::string()));
  }
  return https;
}

absl::StatusOr<std::unique_ptr<HttpListener>> HttpListener::Start(
    std::unique_ptr<httplib::Server> http, const std::string& host, int port,
    const std::string& for_what, const std::string& port_flag) {
  std::unique_ptr<HttpListener> listener(new HttpListener());
  listener->http_ = std::move(http);
  httplib::Server& server = *listener->http_;
  // cpp-httplib's default sets SO_REUSEPORT, with which a second server
  // would silently share a busy port; only SO_REUSEADDR here.
  server.set_socket_options([](socket_t socket) {
    int yes = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const bool bound = port == 0 ? (port = server.bind_to_any_port(host)) > 0
                               : server.bind_to_port(host, port);
  if (!bound) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for ", for_what, " on ", host, ":", port,
                     " (address in use or not available); choose another ",
                     port_flag, ", or 0 to turn it off"));
  }
  listener->port_ = port;
  listener->listener_ = std::thread([&server] { server.listen_after_bind(); });
  // stop() does nothing until the listener runs: wait, so that a Stop()
  // right after Start() cannot leave it listening.
  for (int wait = 0; wait < 5000 && !server.is_running(); ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return listener;
}

HttpListener::~HttpListener() { Stop(); }

void HttpListener::RequestStop() {
  if (http_ != nullptr) http_->stop();
}

void HttpListener::Stop() {
  RequestStop();
  if (listener_.joinable()) listener_.join();
}

}  // namespace reluserve
