// The bytes reluserve-load sends and the little it reads back: BF16
// conversion, a request serialized once and reused with a per-call id, and a
// scan of responses that counts outputs without copying tensor bytes.

#ifndef RELUSERVE_CLIENT_LOAD_WIRE_H_
#define RELUSERVE_CLIENT_LOAD_WIRE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/client.h"
#include "grpc_service.pb.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"

namespace reluserve {

enum class WireType { kFp32, kBf16 };

// "FP32" or "BF16", the Open Inference Protocol datatype names.
const char* WireTypeName(WireType type);

// `values` as raw little-endian bfloat16 bytes, 2 per element.
std::string Bf16Bytes(const std::vector<float>& values);

// What every request of a run carries.
struct LoadRequestSpec {
  std::string model_name = "linear_relu";
  std::string model_version;
  int64_t batch = 1;  // N
  // The model's inputs and outputs, from its metadata (DescribeModel).
  ModelTensors model;
  // Send the optional inputs too (grad_y) and ask for every output; else
  // only the required inputs and the first output.
  bool grad = false;
  WireType dtype = WireType::kFp32;
  // The i-th input from seed + i (x from seed, grad_y from seed + 1, as the
  // CLI does).
  uint64_t seed = 0;
};

// The request: a random [N, row shape] tensor from RandomNormalTensor for
// every input sent, as raw_input_contents in `dtype`; no id; the outputs
// asked for by name. InvalidArgument for a bad shape or a model without
// inputs or outputs.
absl::StatusOr<inference::ModelInferRequest> MakeLoadRequest(
    const LoadRequestSpec& spec);

// How many outputs a response to a request built from `spec` must carry.
int ExpectedOutputs(const LoadRequestSpec& spec);

// Field 3 (id) of ModelInferRequest, encoded on its own. Appended to a
// serialized request it sets the id: protobuf parsers keep the last value of
// a singular field, so the big tensor bytes are serialized once and shared.
std::string EncodeIdField(uint64_t id);

// `body` (a serialized ModelInferRequest, shared by reference) followed by
// the id field of `id`.
grpc::ByteBuffer RequestWithId(const grpc::Slice& body, uint64_t id);

// What a response says, read without copying tensor bytes.
struct ScannedResponse {
  bool parsed = false;        // the bytes are a well-formed message
  std::string error_message;  // ModelStreamInferResponse.error_message
  std::string id;
  int outputs = 0;        // InferOutputTensor entries
  int raw_outputs = 0;    // raw_output_contents entries
  int64_t raw_bytes = 0;  // their total size
};

// Scans a ModelInferResponse (`stream` false) or a ModelStreamInferResponse
// (`stream` true; the fields of its infer_response). Reads `buffer` in place.
ScannedResponse ScanResponse(grpc::ByteBuffer& buffer, bool stream);

// The gRPC code name a ModelStreamInferResponse error_message starts with
// ("INVALID_ARGUMENT: ..." as ReluServe writes them), or "UNKNOWN" when it
// starts with none (Triton's messages carry no code).
std::string StreamErrorCode(const std::string& error_message);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_LOAD_WIRE_H_
