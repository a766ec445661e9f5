// One keep-alive HTTP/1.1 connection to a KServe v2 REST server
// (cpp-httplib's blocking client), with the deadline, the retries on 503 and
// the mapping of socket failures to absl statuses that the HttpClient and
// reluserve-load --protocol http share.

#ifndef RELUSERVE_CLIENT_HTTP_CONNECTION_H_
#define RELUSERVE_CLIENT_HTTP_CONNECTION_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client_security.h"
#include "client/http_infer_response.h"
#include "client/http_protocol.h"

namespace httplib {
class ClientImpl;
}

namespace reluserve {

// Where an HTTP client connects.
struct HttpEndpoint {
  std::string host;  // a name or an address (IPv6 without brackets)
  int port = 0;
  bool tls = false;  // https
};

// "host:port", "[v6 address]:port", "http://host:port" or
// "https://host:port" (a trailing "/" allowed); `tls` (TLS flags given)
// makes a target without a scheme https and refuses http://.
// InvalidArgument, saying what is taken, for anything else: gRPC target URIs
// (ipv4:..., dns:///...), lists, a missing port.
absl::StatusOr<HttpEndpoint> ParseHttpTarget(absl::string_view target,
                                             bool tls = false);

// An answer with any HTTP status; HttpError() says whether it is an error.
struct HttpAnswer {
  int status = 0;
  std::string body;
  // Inference-Header-Content-Length, when the answer carries it.
  std::optional<size_t> header_length;
  // From the request's first attempt to the answer (steady_clock).
  std::chrono::steady_clock::duration round_trip{};

  HttpInferResponseBytes infer_response() const {
    return {body, header_length};
  }
};

// Socket failures come back as Unavailable (the server cannot be reached,
// or the connection broke before the answer; a TLS handshake that failed,
// saying why), DeadlineExceeded (no answer within the deadline) or
// Cancelled (Abort()).
//
// Thread safety: requests may come from any threads and run one at a time
// (a mutex; one connection). Abort() may be called from any thread, also
// while a request is in progress.
class HttpConnection {
 public:
  // `deadline` bounds each request, its attempts and their backoff included
  // (zero or less: none); `max_attempts` (at least 1) is how many times an
  // inference request goes out while the answer is 503 or the connection is
  // refused: 50, 100, 200, 400 ms apart (kRetryInitialBackoffS...), never
  // past the deadline. A bad `target` fails every request with
  // ParseHttpTarget's error. `security`: TLS (an https target, or
  // security.tls), the server's certificate checked against security.ca_pem
  // (else the system's roots) and its name against the target's host; a
  // client certificate when it has one; its token as "Authorization: Bearer
  // <token>" on every request.
  HttpConnection(absl::string_view target, std::chrono::milliseconds deadline,
                 int max_attempts, const ClientSecurity& security = {});
  ~HttpConnection();

  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // GET `path`, one attempt.
  absl::StatusOr<HttpAnswer> Get(const std::string& path) const;

  // POST request.path: the JSON header with `id`, then the binary tensors,
  // sent from `request` without copying them. Retried as the constructor
  // says.
  absl::StatusOr<HttpAnswer> PostInfer(const HttpInferRequest& request,
                                       absl::string_view id) const;

  // GET /v2/health/live until the server answers anything, at most
  // `timeout` (ignoring the deadline). Unavailable, saying how to wait
  // longer, when it never does; at once, saying why, when TLS fails.
  absl::Status WaitForConnection(std::chrono::milliseconds timeout) const;

  // Breaks off the request in progress, if any (it fails Cancelled); the
  // next request connects again.
  void Abort() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Attempt;
  // One request with `send`, which gets the client with its timeouts set
  // for `deadline`.
  template <typename Send>
  Attempt Once(Clock::time_point deadline, const Send& send) const;
  Clock::time_point DeadlineFromNow() const;

  const std::string target_;
  const std::chrono::milliseconds deadline_;
  const int max_attempts_;
  absl::Status target_status_;
  mutable std::mutex mu_;  // one request at a time
  // Set by Abort(), cleared when a request starts.
  mutable std::atomic<bool> aborted_{false};
  bool tls_ = false;
  // An httplib::SSLClient with TLS; null when target_status_ fails.
  std::unique_ptr<httplib::ClientImpl> http_;
};

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_HTTP_CONNECTION_H_
