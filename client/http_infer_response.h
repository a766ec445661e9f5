// Inference responses of the KServe v2 REST protocol, with Triton's binary
// tensor extension: decoded into an InferResult, or only checked. No
// sockets here.

#ifndef RELUSERVE_CLIENT_HTTP_INFER_RESPONSE_H_
#define RELUSERVE_CLIENT_HTTP_INFER_RESPONSE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/http_protocol.h"
#include "client/inference_client.h"

namespace reluserve {

// An inference response as received: its body and, when given, the value
// of its Inference-Header-Content-Length header.
struct HttpInferResponseBytes {
  absl::string_view body;
  std::optional<size_t> header_length;
};

// Decodes every output: "data" arrays, flat or nested (FP32; null and NaN
// read as NaN, Infinity and -Infinity as the infinities, bare or quoted, as
// ReluServe and Python's json write them), or binary sections (FP32 or BF16,
// BF16 widened exactly to FP32). Internal ("malformed response: ...") when the
// JSON, the shapes, the datatypes or the binary sizes do not add up.
absl::StatusOr<InferResult> DecodeHttpInferResponse(
    const HttpInferResponseBytes& response);

// What reluserve-load checks of a response, read with the same checks as
// DecodeHttpInferResponse but without copying any tensor.
struct HttpInferSummary {
  std::string id;
  int outputs = 0;
  int64_t binary_bytes = 0;
};
absl::StatusOr<HttpInferSummary> SummarizeHttpInferResponse(
    const HttpInferResponseBytes& response);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_HTTP_INFER_RESPONSE_H_
