// The KServe v2 REST protocol with Triton's binary tensor extension, as
// bytes: paths, inference requests encoded from a ModelInferRequest, HTTP
// statuses as absl statuses, and JSON answers parsed into the gRPC messages
// of the same meaning. Inference responses: client/http_infer_response.h.
// No sockets here (client/http_connection.h sends them).

#ifndef RELUSERVE_CLIENT_HTTP_PROTOCOL_H_
#define RELUSERVE_CLIENT_HTTP_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/inference_client.h"
#include "google/protobuf/message.h"
#include "grpc_service.pb.h"

namespace reluserve {

// The header that gives the JSON part's length when binary tensors follow
// it, in requests and in responses.
inline constexpr char kInferenceHeaderContentLength[] =
    "Inference-Header-Content-Length";

// Bytes per element of the datatypes the HTTP client carries: 4 for FP32,
// 2 for BF16; 0 for others.
size_t HttpElementBytes(absl::string_view datatype);

// Internal: "malformed response: <problem>".
absl::Status MalformedHttpResponse(absl::string_view problem);

// "/v2/models/<model>", or ".../versions/<version>" when `version` is not
// empty; both percent-encoded (every byte but A-Z a-z 0-9 - . _ ~).
std::string HttpModelPath(absl::string_view model, absl::string_view version);

// An inference request as it goes on the wire: POST `path` with the JSON
// header, then (binary form) the inputs' bytes. Immutable once encoded; the
// id is added per send, so one encoding serves every request of a run.
struct HttpInferRequest {
  std::string path;  // /v2/models/<m>[/versions/<v>]/infer
  // The JSON header without "id"; a JSON object.
  std::string json;
  // The id the request was encoded with (ModelInferRequest.id).
  std::string id;
  // Binary form: every input's bytes, in the order of "inputs"; empty in
  // JSON form.
  std::string binary;
  bool binary_form = true;

  // `json` with "id": `id` as its first member (`json` itself when `id` is
  // empty).
  std::string HeaderWithId(absl::string_view id) const;
  // application/octet-stream (binary form) or application/json.
  const char* content_type() const;
};

// The request `request` says, in `form`. Binary form: each input with
// "parameters": {"binary_data_size": bytes} and its bytes after the header
// (FP32 or BF16, raw_input_contents or fp32_contents), every output asked
// for binary ("binary_data": true on each, or "binary_data_output": true
// for the default set). JSON form: each input's values as a flat row-major
// "data" array, outputs asked for without parameters. The outputs'
// parameters are kept. InvalidArgument when the tensors do not match their
// shapes, or in JSON form for BF16 or a NaN or infinite value (JSON has no
// such numbers).
absl::StatusOr<HttpInferRequest> EncodeHttpInferRequest(
    const inference::ModelInferRequest& request, HttpTensors form);

// The gRPC code an HTTP status stands for: 200-299 OK, 400
// INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404
// NOT_FOUND, 413 RESOURCE_EXHAUSTED, 500 INTERNAL, 501 UNIMPLEMENTED, 503
// UNAVAILABLE, 504 DEADLINE_EXCEEDED, anything else UNKNOWN.
absl::StatusCode HttpStatusCode(int http_status);

// The error an HTTP answer carries: HttpStatusCode's code, the message of
// a {"error": "..."} body (else the body itself, cut to 500 bytes, or
// "HTTP <status>" for an empty one). OK for 2xx.
absl::Status HttpError(int http_status, absl::string_view body);

// Parses a JSON answer into `message` (proto field names or their
// lowerCamel forms; int64 as numbers or strings; unknown fields ignored).
// Internal ("malformed response: ...") when it does not fit.
absl::Status ParseJsonMessage(absl::string_view json,
                              google::protobuf::Message& message);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_HTTP_PROTOCOL_H_
