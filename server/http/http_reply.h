#ifndef RELUSERVE_SERVER_HTTP_HTTP_REPLY_H_
#define RELUSERVE_SERVER_HTTP_HTTP_REPLY_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/http/http_infer_request.h"
#include "server/service/inference_runtime.h"

namespace reluserve {

// The REST side of an infer request's reply: each output in a buffer of
// its own that the model writes into; once computed, a JSON header (with
// the JSON outputs' values) and the binary outputs' buffers, sent as they
// are (Triton's binary tensor extension) without another copy.
//
// Thread safety: one thread at a time (the runtime's, then the sender's).
class HttpReply final : public InferenceReply {
 public:
  // `request` outlives the reply. Binary outputs may hold up to
  // `max_binary_bytes` in all, JSON ones the text of 16 times that.
  HttpReply(const HttpInferRequest& request, int64_t max_binary_bytes);

  absl::StatusOr<int64_t> PlanBytes(const ValidatedRequest& validated,
                                    const ModelSignature& signature,
                                    const ModelConfig& config) override;
  void SetHeader(const ModelConfig& config) override;
  void* AddOutput(std::string_view name,
                  const ValidatedRequest::Output& output) override;
  void Clear() override;

  // After the outputs are computed: writes the JSON header. Then the body
  // is header() followed by each binary_sections() entry.
  void Finish();
  const std::string& header() const { return header_; }
  bool has_binary() const { return has_binary_; }
  std::vector<std::string_view> binary_sections() const;
  size_t body_bytes() const;

 private:
  struct AlignedFree {
    void operator()(std::byte* bytes) const;
  };
  struct Output {
    std::string name;
    Precision precision = Precision::kFloat32;
    std::vector<int64_t> shape;
    int64_t count = 0;
    bool binary = false;
    std::unique_ptr<std::byte, AlignedFree> bytes;
  };

  const HttpInferRequest& request_;
  const int64_t max_binary_bytes_;
  std::string model_name_;
  std::string model_version_;
  std::vector<Output> outputs_;
  std::string header_;
  bool has_binary_ = false;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_HTTP_HTTP_REPLY_H_
