#ifndef RELUSERVE_SERVER_SERVICE_WIRE_RESPONSE_H_
#define RELUSERVE_SERVER_SERVICE_WIRE_RESPONSE_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "server/runtime/inference_request.h"

namespace reluserve {

// A ModelInferResponse assembled in its protobuf wire format, so that the
// reply goes out without a serialization pass: model_name, model_version,
// id and every output's name, datatype and shape are encoded by hand into
// one small header, and each output's raw_output_contents is a buffer this
// response allocates (uninitialised, 64-byte aligned) for the model to write
// in place. Release hands those buffers to gRPC as slices that own them: no
// zero-fill, no copy. The fields come in field-number order, so the bytes
// are exactly what the generated serializer writes for the same message.
//
// Thread safety: none; one thread at a time (the request's).
class WireResponse {
 public:
  // Fields 1-3. Call before AddOutput.
  void SetHeader(std::string_view model_name, std::string_view model_version,
                 std::string_view id);
  // Appends `output` (named `name`, from the signature) and returns its
  // bytes (output.count elements of its precision) for the model, or a BF16
  // conversion, to fill. They stay valid until Clear or destruction, also
  // after Release (the reply holds them).
  void* AddOutput(std::string_view name,
                  const ValidatedRequest::Output& output);

  // The serialized ModelInferResponse's size.
  int64_t ByteSize() const;

  // The message as gRPC sends it: a ModelInferResponse, or (`streamed`) a
  // ModelStreamInferResponse whose infer_response is it. Each call builds a
  // new buffer over the same output bytes.
  grpc::ByteBuffer Release(bool streamed) const;

  // Back to an empty message (an answer that failed).
  void Clear();

 private:
  // Fields 1-3, then every output's InferOutputTensor (field 5).
  std::string header_;
  // Field 6, one entry per output: its tag and length, and its bytes.
  struct Contents {
    std::string prefix;
    grpc::Slice bytes;
  };
  std::vector<Contents> contents_;
};

// A ModelStreamInferResponse carrying only `error_message`: a failed
// stream message's answer.
grpc::ByteBuffer StreamErrorReply(std::string_view error_message);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_WIRE_RESPONSE_H_
