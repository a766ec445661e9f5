#ifndef RELUSERVE_SERVER_HTTP_HTTP_INFER_H_
#define RELUSERVE_SERVER_HTTP_HTTP_INFER_H_

#include <cstdint>
#include <string>

#include "httplib.h"
#include "server/service/inference_runtime.h"

namespace reluserve {

// POST /v2/models/{model}[/versions/{version}]/infer: reads the body
// (bounded: `max_receive_bytes` with binary tensors, 16 times that in JSON),
// converts it, runs it through `runtime` and answers, blocking the calling
// listener thread until then. Errors answer {"error": "..."} with the
// status ToHttpStatus gives.
void ServeInfer(InferenceRuntime& runtime, int64_t max_receive_bytes,
                const std::string& model, const std::string& version,
                const httplib::Request& request, httplib::Response& response,
                const httplib::ContentReader& read_body);

// Sets `response` to `status` (an error) as the REST protocol answers it.
void AnswerError(const absl::Status& status, httplib::Response& response);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_HTTP_HTTP_INFER_H_
