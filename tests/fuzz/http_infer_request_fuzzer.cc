// The REST infer request path from a body as it arrives: laid out in a
// RequestBody, parsed by ParseHttpInferRequest (simdjson, Triton's binary
// tensor extension), then what ServeInfer does with it on the runtime:
// validation, reply sizing, for a request that validates the compute (small
// models, at most 8 rows) and the JSON reply header. Beyond "no crash" it
// checks the body's layout, that a bad request gets INVALID_ARGUMENT or
// NOT_FOUND, that nothing stays held, and the reply's size.
//
// Input: byte 0 picks the model the URL names (kModels; its top bit set:
// the body comes chunked, without a Content-Length to size it by), bytes
// 1-2 are Inference-Header-Content-Length, little-endian (0xffff: no such
// header, the body is all JSON), the rest is the body.
#include <simdjson.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "server/http/http_infer_request.h"
#include "server/http/http_reply.h"
#include "server/http/request_body.h"
#include "server/service/inference_runtime.h"
#include "tests/support/fuzz_models.h"
#include "tests/support/fuzz_testing.h"

namespace reluserve {
namespace {

using testing::FuzzCheckFailed;

struct ModelPath {
  const char* name;
  const char* version;  // "" as in /v2/models/{m}/infer
};
// The models of FuzzModels() as URLs name them, and one that is not served.
constexpr ModelPath kModels[] = {{"linear_relu", ""}, {"deep", ""},
                                 {"deep", "1"},       {"forward_only", ""},
                                 {"deep", "2"},       {"missing", ""}};
constexpr size_t kNoHeaderLength = 0xffff;
// Smaller than the pieces cpp-httplib hands the body over in (4096), so
// that fuzzed bodies come in several.
constexpr size_t kReadChunk = 1000;
constexpr uint8_t kChunkedBit = 0x80;

void CheckLayout(const RequestBody& body, size_t body_size) {
  if (body.size() != body_size) FuzzCheckFailed("the body lost bytes");
  if (body.header().size() > body.size())
    FuzzCheckFailed("the header runs past the body");
  if (body.binary() != nullptr &&
      reinterpret_cast<uintptr_t>(body.binary()) % RequestBody::kAlignment !=
          0) {
    FuzzCheckFailed("the binary section is not aligned");
  }
  // The padding simdjson may read must be there (ASan checks the read).
  const char* end = body.header().data() + body.header().size();
  volatile char last = end[RequestBody::kPadding - 1];
  (void)last;
}

// The reply's JSON header parses (unless it holds NaN or an infinity, which
// the server writes as JavaScript does) and echoes the request.
void CheckReplyHeader(const std::string& header,
                      const HttpInferRequest& request) {
  static simdjson::dom::parser* const parser = new simdjson::dom::parser();
  simdjson::dom::element root;
  if (parser->parse(header).get(root) != simdjson::SUCCESS) {
    if (header.find("NaN") == std::string::npos &&
        header.find("Infinity") == std::string::npos) {
      std::fprintf(stderr, "%s\n", header.c_str());
      FuzzCheckFailed("the reply's JSON header does not parse");
    }
    return;
  }
  std::string_view id;
  simdjson::dom::array outputs;
  if ((!request.id.empty() &&
       (root["id"].get(id) != simdjson::SUCCESS || id != request.id)) ||
      root["outputs"].get(outputs) != simdjson::SUCCESS ||
      (!request.request.outputs.empty() &&
       outputs.size() != request.request.outputs.size())) {
    std::fprintf(stderr, "%s\n", header.c_str());
    FuzzCheckFailed("the reply's JSON header does not echo the request");
  }
}

}  // namespace
}  // namespace reluserve

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reluserve;
  if (size < 3) return 0;
  InferenceRuntime& runtime = testing::FuzzRuntime();
  const ModelPath& path =
      kModels[(data[0] & ~kChunkedBit) % std::size(kModels)];
  const bool chunked = (data[0] & kChunkedBit) != 0;
  const size_t header_field = data[1] | (size_t{data[2]} << 8);
  const bool binary = header_field != kNoHeaderLength;
  const char* bytes = reinterpret_cast<const char*>(data + 3);
  const size_t body_size = size - 3;
  // ServeInfer refuses this before parsing.
  if (binary && header_field > body_size) return 0;

  // As ServeInfer sizes it: by Content-Length, 0 without one.
  RequestBody body(chunked ? 0 : body_size,
                   binary ? header_field : RequestBody::kWholeBody);
  for (size_t at = 0; at < body_size; at += kReadChunk) {
    body.Append(bytes + at, std::min(kReadChunk, body_size - at));
  }
  CheckLayout(body, body_size);

  const absl::StatusOr<HttpInferRequest> parsed = ParseHttpInferRequest(
      body.header(), body.binary(), binary ? body.binary_bytes() : 0);
  static const HttpInferRequest* const empty = new HttpInferRequest();
  HttpReply reply(parsed.ok() ? *parsed : *empty,
                  runtime.limits().max_send_bytes);
  RuntimeRequest neutral;
  neutral.model_name = path.name;
  neutral.model_version = path.version;
  neutral.message_bytes = static_cast<int64_t>(body.size());
  if (parsed.ok()) {
    neutral.id = parsed->id;
    neutral.request = parsed->request;
    for (const std::vector<float>& values : parsed->json_values) {
      neutral.message_bytes += static_cast<int64_t>(values.size() * 4);
    }
  } else {
    neutral.request = parsed.status();
  }
  testing::FuzzStart(runtime, std::move(neutral), reply, [&] {
    reply.Finish();
    size_t total = reply.header().size();
    for (std::string_view section : reply.binary_sections()) {
      total += section.size();
    }
    if (total != reply.body_bytes() || reply.header().empty()) {
      FuzzCheckFailed("the reply's sections differ from its size");
    }
    CheckReplyHeader(reply.header(), *parsed);
  });
  return 0;
}
