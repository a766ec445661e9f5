#include "client/http_connection.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "client/channel.h"
#include "client/http_tls.h"
#include "httplib.h"

namespace reluserve {
namespace {

using Clock = std::chrono::steady_clock;

// With no deadline, a request still gives up after this long without a
// byte moving.
constexpr auto kNoDeadlineSocketTimeout = std::chrono::hours(24);
// A socket timeout fires up to this much before the deadline it was set
// for (its clock and ours differ, and it rounds).
constexpr auto kTimeoutSlack = std::chrono::milliseconds(10);
// WaitForConnection's pause between refused connections.
constexpr auto kConnectRetryPause = std::chrono::milliseconds(50);

absl::Status BadTarget(absl::string_view target, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("HTTP target \"", target, "\": ", why,
                   "; --protocol http takes one HOST:PORT, [IPV6]:PORT, "
                   "http://HOST:PORT or https://HOST:PORT"));
}

std::optional<size_t> HeaderLength(const httplib::Response& response) {
  if (!response.has_header(kInferenceHeaderContentLength)) return std::nullopt;
  size_t length = 0;
  if (!absl::SimpleAtoi(
          response.get_header_value(kInferenceHeaderContentLength), &length)) {
    return std::nullopt;
  }
  return length;
}

// The wait before attempt `attempt` + 1: 50 ms, x2 each time, at most
// 500 ms (gRPC's schedule, without its jitter).
Clock::duration Backoff(int attempt) {
  double seconds = kRetryInitialBackoffS;
  for (int i = 1; i < attempt; ++i) seconds *= kRetryBackoffMultiplier;
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::min(seconds, kRetryMaxBackoffS)));
}

}  // namespace

struct HttpConnection::Attempt {
  absl::StatusOr<HttpAnswer> answer;
  // Nothing reached the server (connection refused), or it answered 503.
  bool retryable = false;
  // TLS failed: no point in trying again.
  bool tls_failed = false;
};

absl::StatusOr<HttpEndpoint> ParseHttpTarget(absl::string_view target,
                                             bool tls) {
  absl::string_view rest = target;
  HttpEndpoint endpoint;
  endpoint.tls = absl::ConsumePrefix(&rest, "https://") || tls;
  if (absl::ConsumePrefix(&rest, "http://") && tls) {
    return BadTarget(target,
                     "http:// with --tls-ca or --tls-cert (TLS): write "
                     "https://HOST:PORT or HOST:PORT");
  }
  absl::ConsumeSuffix(&rest, "/");
  absl::string_view port;
  if (absl::StartsWith(rest, "[")) {
    const size_t close = rest.find(']');
    if (close == absl::string_view::npos || close + 1 >= rest.size() ||
        rest[close + 1] != ':') {
      return BadTarget(target, "no port after the IPv6 address");
    }
    endpoint.host = std::string(rest.substr(1, close - 1));
    port = rest.substr(close + 2);
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos) return BadTarget(target, "no port");
    endpoint.host = std::string(rest.substr(0, colon));
    port = rest.substr(colon + 1);
  }
  const bool plain_host =
      !endpoint.host.empty() &&
      endpoint.host.find_first_of(",/:[]") == std::string::npos;
  const bool ipv6 = absl::StartsWith(rest, "[") && !endpoint.host.empty();
  if (!plain_host && !ipv6) {
    return BadTarget(target, "not one host and port (a gRPC target URI?)");
  }
  if (!absl::SimpleAtoi(port, &endpoint.port) || endpoint.port < 1 ||
      endpoint.port > 65535) {
    return BadTarget(target, absl::StrCat("port \"", port, "\""));
  }
  return endpoint;
}

HttpConnection::HttpConnection(absl::string_view target,
                               std::chrono::milliseconds deadline,
                               int max_attempts, const ClientSecurity& security)
    : target_(target),
      deadline_(deadline),
      max_attempts_(std::max(1, max_attempts)) {
  absl::StatusOr<HttpEndpoint> endpoint = ParseHttpTarget(target, security.tls);
  target_status_ = endpoint.status();
  if (!endpoint.ok()) return;
  tls_ = endpoint->tls;
  if (tls_) {
    absl::StatusOr<std::unique_ptr<httplib::ClientImpl>> client =
        MakeHttpsClient(endpoint->host, endpoint->port, security);
    target_status_ = client.status();
    if (!client.ok()) return;
    http_ = *std::move(client);
  } else {
    http_ =
        std::make_unique<httplib::ClientImpl>(endpoint->host, endpoint->port);
  }
  http_->set_keep_alive(true);
  // The header and the body leave in separate writes: without this, Nagle
  // holds the body back until the header's ACK, which the server may delay.
  http_->set_tcp_nodelay(true);
  // HttpModelPath encodes the names itself.
  http_->set_url_encode(false);
  // The server would otherwise gzip JSON answers: CPU on both sides for
  // loopback or LAN bytes.
  httplib::Headers headers = {{"Accept-Encoding", "identity"}};
  if (!security.token.empty()) {
    headers.emplace("Authorization", BearerValue(security.token));
  }
  http_->set_default_headers(std::move(headers));
}

HttpConnection::~HttpConnection() = default;

Clock::time_point HttpConnection::DeadlineFromNow() const {
  if (deadline_.count() <= 0) return Clock::now() + kNoDeadlineSocketTimeout;
  return Clock::now() + deadline_;
}

template <typename Send>
HttpConnection::Attempt HttpConnection::Once(Clock::time_point deadline,
                                             const Send& send) const {
  if (!target_status_.ok()) return {target_status_, false};
  std::lock_guard<std::mutex> lock(mu_);
  aborted_ = false;
  const Clock::time_point start = Clock::now();
  const auto left =
      std::max<Clock::duration>(deadline - start, std::chrono::milliseconds(1));
  const auto left_us =
      std::chrono::duration_cast<std::chrono::microseconds>(left);
  http_->set_connection_timeout(left_us);
  http_->set_read_timeout(left_us);
  http_->set_write_timeout(left_us);
  if (tls_) ClearTlsFailure();
  httplib::Result result = send(*http_);
  const Clock::time_point end = Clock::now();
  const auto elapsed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(end - start)
          .count();
  if (!result) {
    const httplib::Error error = result.error();
    if (aborted_ || error == httplib::Error::Canceled) {
      return {absl::CancelledError("request aborted"), false};
    }
    if (end + kTimeoutSlack >= deadline) {
      return {absl::DeadlineExceededError(absl::StrCat(
                  "no answer from ", target_, " within ", elapsed_ms, " ms")),
              false};
    }
    if (const TlsFailure tls = tls_ ? TlsFailureOf(error) : TlsFailure();
        !tls.why.empty()) {
      Attempt attempt{absl::UnavailableError(absl::StrCat(
                          "TLS to ", target_, " failed: ", tls.why)),
                      false};
      attempt.tls_failed = tls.definite;
      return attempt;
    }
    if (error == httplib::Error::Connection ||
        error == httplib::Error::ConnectionTimeout) {
      return {absl::UnavailableError(absl::StrCat(
                  "cannot reach ", target_, " (", httplib::to_string(error),
                  "): is the server running there with HTTP on?")),
              true};
    }
    return {absl::UnavailableError(absl::StrCat(
                "connection to ", target_, " failed after ", elapsed_ms,
                " ms (", httplib::to_string(error), ")")),
            false};
  }
  if (end > deadline) {
    return {absl::DeadlineExceededError(
                absl::StrCat("the answer from ", target_, " took ", elapsed_ms,
                             " ms, past the deadline")),
            false};
  }
  HttpAnswer answer;
  answer.status = result->status;
  answer.header_length = HeaderLength(*result);
  answer.body = std::move(result->body);
  answer.round_trip = end - start;
  const bool unavailable = answer.status == 503;
  return {std::move(answer), unavailable};
}

absl::StatusOr<HttpAnswer> HttpConnection::Get(const std::string& path) const {
  return Once(DeadlineFromNow(),
              [&path](httplib::ClientImpl& http) { return http.Get(path); })
      .answer;
}

absl::StatusOr<HttpAnswer> HttpConnection::PostInfer(
    const HttpInferRequest& request, absl::string_view id) const {
  const std::string header = request.HeaderWithId(id);
  const size_t length = header.size() + request.binary.size();
  httplib::Headers headers;
  if (request.binary_form) {
    headers.emplace(kInferenceHeaderContentLength,
                    std::to_string(header.size()));
  }
  // Writes whatever part of header + binary starts at `offset`.
  const auto provide = [&](size_t offset, size_t, httplib::DataSink& sink) {
    if (offset < header.size()) {
      return sink.write(header.data() + offset, header.size() - offset);
    }
    const size_t at = offset - header.size();
    return sink.write(request.binary.data() + at, request.binary.size() - at);
  };
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = DeadlineFromNow();
  for (int attempt = 1;; ++attempt) {
    Attempt result = Once(deadline, [&](httplib::ClientImpl& http) {
      return http.Post(request.path, headers, length, provide,
                       request.content_type());
    });
    const Clock::duration pause = Backoff(attempt);
    if (!result.retryable || attempt >= max_attempts_ || aborted_ ||
        Clock::now() + pause >= deadline) {
      if (result.answer.ok()) result.answer->round_trip = Clock::now() - start;
      return std::move(result.answer);
    }
    std::this_thread::sleep_for(pause);
  }
}

absl::Status HttpConnection::WaitForConnection(
    std::chrono::milliseconds timeout) const {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    Attempt attempt = Once(deadline, [](httplib::ClientImpl& http) {
      return http.Get("/v2/health/live");
    });
    if (attempt.answer.ok()) return absl::OkStatus();
    const absl::StatusCode code = attempt.answer.status().code();
    if (code == absl::StatusCode::kInvalidArgument || attempt.tls_failed) {
      return attempt.answer.status();
    }
    const Clock::time_point now = Clock::now();
    if (code == absl::StatusCode::kCancelled ||
        now + kConnectRetryPause >= deadline) {
      return absl::UnavailableError(absl::StrCat(
          "cannot reach ", target_, ": no HTTP answer within ", timeout.count(),
          " ms (is the server running there, with --http-port? "
          "--connect-timeout-ms waits longer)",
          tls_ ? absl::StrCat("; last: ", attempt.answer.status().message())
               : ""));
    }
    std::this_thread::sleep_for(kConnectRetryPause);
  }
}

void HttpConnection::Abort() const {
  if (http_ == nullptr) return;
  aborted_ = true;
  http_->stop();
}

}  // namespace reluserve
