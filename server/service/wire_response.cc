#include "server/service/wire_response.h"

#include <cstdlib>
#include <new>

#include "server/core/precision.h"

namespace reluserve {
namespace {

// Protobuf's wire format: every field number here is below 16, so each tag
// is one byte, (field << 3) | wire type.
constexpr char kDelimited = 2;

char Tag(int field) { return static_cast<char>((field << 3) | kDelimited); }

void PutVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

size_t VarintSize(uint64_t value) {
  size_t bytes = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++bytes;
  }
  return bytes;
}

// A length-delimited field, written even when empty (a repeated entry).
void PutDelimited(std::string& out, int field, std::string_view bytes) {
  out.push_back(Tag(field));
  PutVarint(out, bytes.size());
  out.append(bytes.data(), bytes.size());
}

// A proto3 string field: absent when empty.
void PutString(std::string& out, int field, std::string_view value) {
  if (!value.empty()) PutDelimited(out, field, value);
}

// Fields of ModelInferResponse, InferOutputTensor and ModelStreamInferResponse
// (proto/grpc_service.proto).
constexpr int kModelName = 1, kModelVersion = 2, kId = 3, kOutputs = 5,
              kRawOutputContents = 6;
constexpr int kTensorName = 1, kTensorDatatype = 2, kTensorShape = 3;
constexpr int kStreamErrorMessage = 1, kStreamInferResponse = 2;

// Output bytes with no initialisation, aligned for the kernels' vector
// stores, freed by the last slice that refers to them.
grpc::Slice UninitializedBytes(size_t bytes) {
  if (bytes == 0) return grpc::Slice();
  constexpr size_t kAlignment = 64;
  const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  void* memory = std::aligned_alloc(kAlignment, rounded);
  if (memory == nullptr) throw std::bad_alloc();
  return grpc::Slice(memory, bytes, std::free);
}

}  // namespace

void WireResponse::SetHeader(std::string_view model_name,
                             std::string_view model_version,
                             std::string_view id) {
  header_.clear();
  PutString(header_, kModelName, model_name);
  PutString(header_, kModelVersion, model_version);
  PutString(header_, kId, id);
}

void* WireResponse::AddOutput(std::string_view name,
                              const ValidatedRequest::Output& output) {
  std::string shape;
  for (int64_t dim : output.shape) PutVarint(shape, static_cast<uint64_t>(dim));
  std::string tensor;
  PutString(tensor, kTensorName, name);
  PutString(tensor, kTensorDatatype, DatatypeName(output.precision));
  PutString(tensor, kTensorShape, shape);  // packed; absent when scalar
  PutDelimited(header_, kOutputs, tensor);

  const size_t bytes =
      static_cast<size_t>(output.count) * ElementBytes(output.precision);
  Contents contents;
  contents.prefix.push_back(Tag(kRawOutputContents));
  PutVarint(contents.prefix, bytes);
  contents.bytes = UninitializedBytes(bytes);
  contents_.push_back(std::move(contents));
  // The slice owns the memory; it is written before gRPC ever reads it.
  return const_cast<uint8_t*>(contents_.back().bytes.begin());
}

int64_t WireResponse::ByteSize() const {
  size_t bytes = header_.size();
  for (const Contents& contents : contents_) {
    bytes += contents.prefix.size() + contents.bytes.size();
  }
  return static_cast<int64_t>(bytes);
}

grpc::ByteBuffer WireResponse::Release(bool streamed) const {
  std::string head;
  if (streamed) {
    const auto message = static_cast<uint64_t>(ByteSize());
    head.reserve(1 + VarintSize(message) + header_.size());
    head.push_back(Tag(kStreamInferResponse));
    PutVarint(head, message);
  }
  head += header_;
  std::vector<grpc::Slice> slices;
  slices.reserve(1 + 2 * contents_.size());
  // The first prefix rides in the header's slice.
  if (!contents_.empty()) head += contents_.front().prefix;
  slices.emplace_back(head);
  for (size_t i = 0; i < contents_.size(); ++i) {
    if (i > 0) slices.emplace_back(contents_[i].prefix);
    if (contents_[i].bytes.size() > 0) slices.push_back(contents_[i].bytes);
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::ByteBuffer StreamErrorReply(std::string_view error_message) {
  std::string message;
  PutString(message, kStreamErrorMessage, error_message);
  grpc::Slice slice(message);
  return grpc::ByteBuffer(&slice, 1);
}

void WireResponse::Clear() {
  header_.clear();
  contents_.clear();
}

}  // namespace reluserve
