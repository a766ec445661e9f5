#include "client/load_wire.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/tensor.h"
#include "common/bfloat16.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/support/proto_buffer_reader.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "reluserve-load assumes a little-endian host");

namespace reluserve {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

std::string RawBytes(const std::vector<float>& values, WireType dtype) {
  if (dtype == WireType::kBf16) return Bf16Bytes(values);
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(float));
}

void AddInput(const std::string& name, const Tensor& tensor, WireType dtype,
              inference::ModelInferRequest& request) {
  auto* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype(WireTypeName(dtype));
  input->mutable_shape()->Add(tensor.shape.begin(), tensor.shape.end());
  *request.add_raw_input_contents() = RawBytes(tensor.data, dtype);
}

// Reads the fields of a ModelInferResponse up to the stream's end or limit.
bool ScanInferResponse(CodedInputStream& in, ScannedResponse& out) {
  while (const uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const bool delimited = WireFormatLite::GetTagWireType(tag) ==
                           WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    if (delimited && field == 3) {  // id
      if (!WireFormatLite::ReadString(&in, &out.id)) return false;
    } else if (delimited && (field == 5 || field == 6)) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length) || !in.Skip(static_cast<int>(length))) {
        return false;
      }
      if (field == 5) {
        ++out.outputs;
      } else {
        ++out.raw_outputs;
        out.raw_bytes += length;
      }
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  return in.ConsumedEntireMessage();
}

bool ScanStreamResponse(CodedInputStream& in, ScannedResponse& out) {
  while (const uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const bool delimited = WireFormatLite::GetTagWireType(tag) ==
                           WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    if (delimited && field == 1) {  // error_message
      if (!WireFormatLite::ReadString(&in, &out.error_message)) return false;
    } else if (delimited && field == 2) {  // infer_response
      uint32_t length = 0;
      if (!in.ReadVarint32(&length)) return false;
      const CodedInputStream::Limit limit =
          in.PushLimit(static_cast<int>(length));
      if (!ScanInferResponse(in, out)) return false;
      in.PopLimit(limit);
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  return in.ConsumedEntireMessage();
}

}  // namespace

const char* WireTypeName(WireType type) {
  return type == WireType::kBf16 ? "BF16" : "FP32";
}

std::string Bf16Bytes(const std::vector<float>& values) {
  std::string bytes(values.size() * 2, '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t half = ToBfloat16(values[i]);
    std::memcpy(&bytes[2 * i], &half, sizeof(half));
  }
  return bytes;
}

absl::StatusOr<inference::ModelInferRequest> MakeLoadRequest(
    const LoadRequestSpec& spec) {
  if (spec.batch < 1 || spec.model.inputs.empty() ||
      spec.model.outputs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "batch ", spec.batch, ", ", spec.model.inputs.size(), " inputs, ",
        spec.model.outputs.size(), " outputs: each must be at least 1"));
  }
  inference::ModelInferRequest request;
  request.set_model_name(spec.model_name);
  request.set_model_version(spec.model_version);
  for (size_t i = 0; i < spec.model.inputs.size(); ++i) {
    const ModelInput& input = spec.model.inputs[i];
    if (input.optional && !spec.grad) continue;
    std::vector<int64_t> shape = {spec.batch};
    shape.insert(shape.end(), input.row_shape.begin(), input.row_shape.end());
    absl::StatusOr<Tensor> tensor = RandomNormalTensor(shape, spec.seed + i);
    if (!tensor.ok()) return tensor.status();
    AddInput(input.name, *tensor, spec.dtype, request);
  }
  if (spec.grad) {
    for (const std::string& name : spec.model.outputs) {
      request.add_outputs()->set_name(name);
    }
  } else {
    request.add_outputs()->set_name(spec.model.outputs.front());
  }
  return request;
}

int ExpectedOutputs(const LoadRequestSpec& spec) {
  return spec.grad ? static_cast<int>(spec.model.outputs.size()) : 1;
}

std::string EncodeIdField(uint64_t id) {
  const std::string text = std::to_string(id);
  std::string field;
  field.push_back(static_cast<char>((3 << 3) | 2));  // field 3, delimited
  field.push_back(static_cast<char>(text.size()));   // at most 20 < 128
  field += text;
  return field;
}

grpc::ByteBuffer RequestWithId(const grpc::Slice& body, uint64_t id) {
  const grpc::Slice slices[2] = {body, grpc::Slice(EncodeIdField(id))};
  return grpc::ByteBuffer(slices, 2);
}

ScannedResponse ScanResponse(grpc::ByteBuffer& buffer, bool stream) {
  ScannedResponse out;
  if (!buffer.Valid() || buffer.Length() == 0) {
    out.parsed = true;  // an empty message: every field at its default
    return out;
  }
  grpc::ProtoBufferReader reader(&buffer);
  if (!reader.status().ok()) return out;
  CodedInputStream in(&reader);
  out.parsed =
      stream ? ScanStreamResponse(in, out) : ScanInferResponse(in, out);
  return out;
}

std::string StreamErrorCode(const std::string& error_message) {
  for (int code = 1; code <= 16; ++code) {
    const std::string name =
        absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
    if (absl::StartsWith(error_message, name + ":")) return name;
  }
  return "UNKNOWN";
}

}  // namespace reluserve
