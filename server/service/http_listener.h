#ifndef RELUSERVE_SERVER_SERVICE_HTTP_LISTENER_H_
#define RELUSERVE_SERVER_SERVICE_HTTP_LISTENER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "server/service/tls_files.h"

namespace httplib {
class Server;
}

namespace reluserve {

// A cpp-httplib server bound to one address and listening on a thread of
// its own: what the metrics endpoint and the REST front end share.
//
// Thread safety: Stop() is called from one thread (again is harmless).
class HttpListener {
 public:
  // Binds host:port (0 picks a free port) without SO_REUSEPORT and starts
  // listening. The error for a busy port says what it was `for` and names
  // the flag that chooses another.
  // A cpp-httplib server for Start(): plain HTTP, or HTTPS with `tls`'s
  // files when it is enabled (and client certificates required when it has
  // a client CA). Fails naming the files when OpenSSL refuses them.
  static absl::StatusOr<std::unique_ptr<httplib::Server>> NewServer(
      const TlsFiles& tls);
  static absl::StatusOr<std::unique_ptr<HttpListener>> Start(
      std::unique_ptr<httplib::Server> http, const std::string& host, int port,
      const std::string& for_what, const std::string& port_flag);
  ~HttpListener();

  int port() const { return port_; }
  httplib::Server& http() { return *http_; }
  // Stops listening; connections end after their request in progress, or
  // once idle for their keep-alive timeout (cpp-httplib 0.11 does not wake
  // an idle one): keep that short.
  void RequestStop();
  // RequestStop(), then waits for every connection to end.
  void Stop();

 private:
  HttpListener() = default;

  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_HTTP_LISTENER_H_
