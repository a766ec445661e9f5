#ifndef RELUSERVE_SERVER_HTTP_HTTP_FRONT_END_H_
#define RELUSERVE_SERVER_HTTP_HTTP_FRONT_END_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/service/bearer_tokens.h"
#include "server/service/http_listener.h"
#include "server/service/inference_runtime.h"

namespace reluserve {

// The Open Inference Protocol's REST flavour (KServe v2, as Triton serves
// it, with Triton's binary tensor extension) over the runtime the gRPC
// front end uses: it converts JSON and binary tensors to the runtime's
// request and results back, and nothing more (docs/api.md, "HTTP/REST").
//
// Thread safety: requests are served on the listener's threads, each one
// blocking on its own request; Stop() is called from one thread.
class HttpFrontEnd {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 8000;  // 0 picks a free port
    // Threads serving connections; a keep-alive connection holds one while
    // it is open, so this bounds the connections served at once.
    int threads = 32;
    // The largest body with binary tensors; JSON bodies may be 16 times as
    // large (numbers as text). 413 above.
    int64_t max_receive_bytes = 64 << 20;
    // HTTPS (and client certificates) when enabled.
    TlsFiles tls;
    // When set, every endpoint but /v2/health/* needs one of these tokens.
    std::shared_ptr<const BearerTokens> tokens;
  };

  static absl::StatusOr<std::unique_ptr<HttpFrontEnd>> Start(
      const Options& options, std::shared_ptr<InferenceRuntime> runtime);

  int port() const { return listener_->port(); }
  // Stops listening and waits for the requests in progress and for idle
  // connections to time out (kKeepAliveSeconds). The runtime is drained
  // first (its requests get 503 meanwhile). RequestStop() only asks.
  void RequestStop() { listener_->RequestStop(); }
  void Stop() { listener_->Stop(); }

  // How long a connection may stay idle between requests; also how long an
  // idle connection can hold Stop() (cpp-httplib 0.11 does not wake it).
  static constexpr int kKeepAliveSeconds = 2;

 private:
  HttpFrontEnd() = default;

  std::shared_ptr<const BearerTokens> tokens_;  // the routes hold it raw
  std::unique_ptr<HttpListener> listener_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_HTTP_HTTP_FRONT_END_H_
