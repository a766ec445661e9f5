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
#include "client/http_infer_response.h"
#include "client/http_protocol.h"

namespace httplib {
class Client;
}

namespace reluserve {

// Where an HTTP client connects.
struct HttpEndpoint {
  std::string host;  // a name or an address (IPv6 without brackets)
  int port = 0;
};

// "host:port", "[v6 address]:port" or "http://host:port" (a trailing "/"
// allowed). InvalidArgument, saying what is taken, for anything else: gRPC
// target URIs (ipv4:..., dns:///...), lists, https, a missing port.
absl::StatusOr<HttpEndpoint> ParseHttpTarget(absl::string_view target);

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
// or the connection broke before the answer), DeadlineExceeded (no answer
// within the deadline) or Cancelled (Abort()).
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
  // ParseHttpTarget's error.
  HttpConnection(absl::string_view target, std::chrono::milliseconds deadline,
                 int max_attempts);
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
  // longer, when it never does.
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
  std::unique_ptr<httplib::Client> http_;  // null when target_status_ fails
};

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_HTTP_CONNECTION_H_
