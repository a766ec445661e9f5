#include "server/http/http_infer.h"

#include <algorithm>
#include <charconv>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/http/http_infer_request.h"
#include "server/http/http_reply.h"
#include "server/http/json_writer.h"
#include "server/http/request_body.h"
#include "server/service/status_translation.h"

namespace reluserve {
namespace {

// JSON numbers take several times the bytes of their binary form.
constexpr int64_t kJsonBodyFactor = 16;

// A header's value as a byte count; nullopt when absent.
absl::StatusOr<std::optional<size_t>> ByteCountHeader(
    const httplib::Request& request, const char* name) {
  if (!request.has_header(name)) return std::nullopt;
  const std::string value = request.get_header_value(name);
  size_t count = 0;
  const auto [end, error] =
      std::from_chars(value.data(), value.data() + value.size(), count);
  if (error != std::errc() || end != value.data() + value.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected header ", name, " to be a byte count, got '", value, "'"));
  }
  return count;
}

absl::Status TooLarge(size_t bytes, int64_t limit, bool binary) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "the request body is ", bytes, " bytes, above the server's limit of ",
      limit, " bytes for a body ",
      binary ? "with binary tensors" : "in JSON (16 times the binary limit)",
      binary ? "; send fewer rows per request"
             : "; send the tensors as binary data (binary_data_size) or "
               "fewer rows per request"));
}

// What one request holds from its arrival until its reply is sent.
struct Exchange {
  absl::StatusOr<HttpInferRequest> parsed;
  std::optional<HttpReply> reply;
  InferenceRuntime::Sent sent;
  ~Exchange() {
    if (sent) sent();
  }
};

const HttpInferRequest& EmptyRequest() {
  static const HttpInferRequest* const empty = new HttpInferRequest();
  return *empty;
}

}  // namespace

void AnswerError(const absl::Status& status, httplib::Response& response) {
  response.status = ToHttpStatus(status);
  response.set_content(
      absl::StrCat("{\"error\":", JsonString(std::string(status.message())),
                   "}"),
      "application/json");
}

void ServeInfer(InferenceRuntime& runtime, int64_t max_receive_bytes,
                const std::string& model, const std::string& version,
                const httplib::Request& request, httplib::Response& response,
                const httplib::ContentReader& read_body) {
  absl::StatusOr<std::optional<size_t>> header_bytes =
      ByteCountHeader(request, kHeaderLength);
  if (!header_bytes.ok()) {
    // Read and drop the body first: left unread, a keep-alive connection
    // would take it for the next requests.
    read_body([](const char*, size_t) { return true; });
    response.set_header("Connection", "close");
    return AnswerError(header_bytes.status(), response);
  }
  // cpp-httplib has read a Content-Length to get here; absent: no body.
  absl::StatusOr<std::optional<size_t>> content_length =
      ByteCountHeader(request, "Content-Length");
  if (!content_length.ok()) content_length = std::nullopt;
  const bool binary = header_bytes->has_value();
  const int64_t limit =
      binary ? max_receive_bytes : kJsonBodyFactor * max_receive_bytes;
  // Above the limit the body is still read (httplib bounds it at 16 times
  // the binary limit) and dropped, so that the client, which sends all of
  // it before reading, gets the 413 rather than a reset connection.
  const size_t expected =
      std::min<size_t>(content_length->value_or(0), static_cast<size_t>(limit));
  // Without binary tensors the whole body is the JSON header.
  RequestBody body(expected, header_bytes->value_or(RequestBody::kWholeBody));
  size_t received = 0;
  const bool read = read_body([&](const char* data, size_t size) {
    received += size;
    if (static_cast<int64_t>(received) <= limit) body.Append(data, size);
    return true;
  });
  if (static_cast<int64_t>(received) > limit) {
    return AnswerError(TooLarge(received, limit, binary), response);
  }
  if (!read && response.status == 413) {
    // cpp-httplib refused a Content-Length above the JSON bound unread.
    response.set_header("Connection", "close");
    return AnswerError(TooLarge(content_length->value_or(0),
                                kJsonBodyFactor * max_receive_bytes, false),
                       response);
  }
  if (!read) {
    response.set_header("Connection", "close");
    return AnswerError(
        absl::InvalidArgumentError("the request body could not be read"),
        response);
  }
  if (binary && **header_bytes > body.size()) {
    return AnswerError(absl::InvalidArgumentError(absl::StrCat(
                           "expected ", kHeaderLength, " (", **header_bytes,
                           ") to be at most the body's length, got a body of ",
                           body.size(), " bytes")),
                       response);
  }

  auto exchange = std::make_shared<Exchange>();
  exchange->parsed = ParseHttpInferRequest(body.header(), body.binary(),
                                           binary ? body.binary_bytes() : 0);
  const HttpInferRequest& parsed =
      exchange->parsed.ok() ? *exchange->parsed : EmptyRequest();
  exchange->reply.emplace(parsed, runtime.limits().max_send_bytes);

  RuntimeRequest neutral;
  neutral.model_name = model;
  neutral.model_version = version;
  neutral.id = parsed.id;
  if (exchange->parsed.ok()) {
    neutral.request = parsed.request;
  } else {
    neutral.request = exchange->parsed.status();
  }
  int64_t held = static_cast<int64_t>(body.size());
  for (const std::vector<float>& values : parsed.json_values) {
    held += static_cast<int64_t>(values.size() * sizeof(float));
  }
  neutral.message_bytes = held;
  neutral.method = "REST infer";
  neutral.peer = [&request] {
    const bool v6 = request.remote_addr.find(':') != std::string::npos;
    return absl::StrCat(v6 ? "ipv6:[" : "ipv4:", request.remote_addr,
                        v6 ? "]:" : ":", request.remote_port);
  };
  absl::Notification answered;
  absl::Status outcome;
  runtime.Start(std::move(neutral), *exchange->reply,
                [&](const absl::Status& status, InferenceRuntime::Sent sent) {
                  outcome = status;
                  exchange->sent = std::move(sent);
                  answered.Notify();
                });
  answered.WaitForNotification();
  if (!outcome.ok()) return AnswerError(outcome, response);

  HttpReply& reply = *exchange->reply;
  reply.Finish();
  const char* content_type = "application/json";
  if (reply.has_binary()) {
    content_type = "application/octet-stream";
    response.set_header(kHeaderLength, std::to_string(reply.header().size()));
  }
  response.status = 200;
  // The body goes out from the reply's own buffers; the exchange (and the
  // request's share of the byte budget) lives until it has.
  response.set_content_provider(
      reply.body_bytes(), content_type,
      [exchange](size_t offset, size_t, httplib::DataSink& sink) {
        std::vector<std::string_view> segments{exchange->reply->header()};
        for (std::string_view section : exchange->reply->binary_sections()) {
          segments.push_back(section);
        }
        for (std::string_view segment : segments) {
          if (offset >= segment.size()) {
            offset -= segment.size();
            continue;
          }
          if (!sink.write(segment.data() + offset, segment.size() - offset)) {
            return false;
          }
          offset = 0;
        }
        return true;
      },
      [exchange](bool) mutable { exchange.reset(); });
}

}  // namespace reluserve
