#ifndef RELUSERVE_SERVER_HTTP_HTTP_INFER_REQUEST_H_
#define RELUSERVE_SERVER_HTTP_HTTP_INFER_REQUEST_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "server/runtime/inference_request.h"

namespace reluserve {

// Triton's binary extension: the length of the JSON before the binary data.
inline constexpr char kHeaderLength[] = "Inference-Header-Content-Length";

// An infer request of the REST protocol (KServe v2 with Triton's binary
// tensor extension) in the runtime's terms. Its InferenceRequest views the
// body's binary section and the values parsed from JSON `data`, held here.
struct HttpInferRequest {
  std::string id;
  InferenceRequest request;
  // Per requested output (request.outputs), whether it is sent as binary
  // data; used when the request names no outputs.
  std::vector<bool> binary_outputs;
  bool binary_data_output = false;
  // Values of JSON `data`, one vector per such input (their buffers stay
  // put when this moves).
  std::vector<std::vector<float>> json_values;

  // Whether the i-th output of the reply is sent as binary data.
  bool BinaryOutput(size_t i) const {
    return i < binary_outputs.size() ? binary_outputs[i] : binary_data_output;
  }
};

// Parses the JSON `header` (followed by at least 64 readable bytes) and
// takes each binary input's bytes, in order, from `binary`. InvalidArgument,
// naming the field or tensor, what was expected and what came, when the
// header is not such a request or the binary section does not match it
// exactly.
absl::StatusOr<HttpInferRequest> ParseHttpInferRequest(std::string_view header,
                                                       const char* binary,
                                                       size_t binary_bytes);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_HTTP_HTTP_INFER_REQUEST_H_
