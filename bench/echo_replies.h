// The bare transport floor's replies: built once at start-up, for every
// request reluserve-load can send to a model at the given batch sizes, and
// found per call by the request's length alone.

#ifndef RELUSERVE_BENCH_ECHO_REPLIES_H_
#define RELUSERVE_BENCH_ECHO_REPLIES_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/service/served_model.h"

namespace reluserve {

// Thread safety: immutable after Create; Reply is safe from many threads.
class EchoReplies {
 public:
  // For each N in `batches`, forward and forward+backward, FP32 and BF16:
  // the length of the request reluserve-load sends (MakeLoadRequest, without
  // its id) and the response reluserve-server would send (WireResponse,
  // zero tensors), its slices kept to be shared by every reply.
  static absl::StatusOr<EchoReplies> Create(
      const ServedModelSpec& model, const std::vector<int64_t>& batches);

  // The prebuilt reply for `request`, matched by its length, with the id
  // reluserve-load appends as the request's last field (read off the tail
  // bytes) echoed as the reply's last field; wrapped as a
  // ModelStreamInferResponse if `streamed`. Never parses the request. False
  // when no prebuilt reply matches.
  bool Reply(const grpc::ByteBuffer& request, bool streamed,
             grpc::ByteBuffer* reply) const;

  // The request lengths known, for an error message.
  std::string Known() const;

 private:
  struct Prebuilt {
    std::vector<grpc::Slice> slices;  // the ModelInferResponse without id
    int64_t bytes = 0;
    std::string shape;  // e.g. "N=100 forward+backward FP32"
  };
  // By request length without the id field.
  std::map<size_t, Prebuilt> replies_;
};

}  // namespace reluserve

#endif  // RELUSERVE_BENCH_ECHO_REPLIES_H_
