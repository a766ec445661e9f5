#include "bench/echo_replies.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/client.h"
#include "client/load_wire.h"
#include "server/runtime/request_validation.h"
#include "server/service/grpc_request.h"
#include "server/service/model_signature.h"
#include "server/service/wire_response.h"

namespace reluserve {
namespace {

constexpr char kIdTag = (3 << 3) | 2;  // ModelInferRequest.id, delimited
constexpr char kStreamInferResponseTag = (2 << 3) | 2;
constexpr size_t kLongestId = 20;  // a uint64 in decimal

void PutVarint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// The last `count` bytes of `slices` (fewer if the message is shorter).
std::string Tail(const std::vector<grpc::Slice>& slices, size_t count) {
  std::string tail;
  for (auto slice = slices.rbegin();
       slice != slices.rend() && tail.size() < count; ++slice) {
    const size_t take = std::min(count - tail.size(), slice->size());
    tail.insert(0, reinterpret_cast<const char*>(slice->end() - take), take);
  }
  return tail;
}

}  // namespace

absl::StatusOr<EchoReplies> EchoReplies::Create(
    const ServedModelSpec& model, const std::vector<int64_t>& batches) {
  const ModelSignature& signature = model.model->signature();
  inference::ModelMetadataResponse metadata;
  FillModelMetadata(model.config, {model.config.version}, signature, &metadata);
  absl::StatusOr<ModelTensors> tensors = DescribeModel(metadata, nullptr);
  if (!tensors.ok()) return tensors.status();
  EchoReplies replies;
  for (int64_t batch : batches) {
    for (bool grad : {false, true}) {
      for (WireType dtype : {WireType::kFp32, WireType::kBf16}) {
        LoadRequestSpec spec;
        spec.model_name = model.config.name;
        spec.batch = batch;
        spec.model = *tensors;
        spec.grad = grad;
        spec.dtype = dtype;
        absl::StatusOr<inference::ModelInferRequest> request =
            MakeLoadRequest(spec);
        if (!request.ok()) return request.status();
        absl::StatusOr<InferenceRequest> neutral =
            FromModelInferRequest(*request);
        if (!neutral.ok()) return neutral.status();
        absl::StatusOr<ValidatedRequest> validated =
            ValidateRequest(*neutral, signature, model.config.max_batch);
        if (!validated.ok()) return validated.status();
        WireResponse response;
        response.SetHeader(model.config.name, model.config.version, "");
        for (const ValidatedRequest::Output& output : validated->outputs) {
          void* bytes = response.AddOutput(
              signature.outputs[static_cast<size_t>(output.index)].name,
              output);
          std::memset(bytes, 0,
                      static_cast<size_t>(output.count) *
                          ElementBytes(output.precision));
        }
        Prebuilt prebuilt;
        prebuilt.bytes = response.ByteSize();
        if (!response.Release(/*streamed=*/false).Dump(&prebuilt.slices).ok()) {
          return absl::InternalError("cannot read a prebuilt reply's slices");
        }
        prebuilt.shape =
            absl::StrCat("N=", batch, grad ? " forward+backward " : " forward ",
                         WireTypeName(dtype));
        replies.replies_[request->ByteSizeLong()] = std::move(prebuilt);
      }
    }
  }
  return replies;
}

bool EchoReplies::Reply(const grpc::ByteBuffer& request, bool streamed,
                        grpc::ByteBuffer* reply) const {
  std::vector<grpc::Slice> received;
  if (!request.Dump(&received).ok()) return false;
  const size_t length = request.Length();
  const std::string tail = Tail(received, kLongestId + 2);
  // Field 3 with a length byte L as the last 2 + L bytes, or no id.
  const Prebuilt* prebuilt = nullptr;
  std::string id_field;
  for (size_t id = kLongestId + 1; id-- > 0 && prebuilt == nullptr;) {
    if (tail.size() < id + 2 || length < id + 2) continue;
    const size_t at = tail.size() - id - 2;
    if (tail[at] != kIdTag || static_cast<unsigned char>(tail[at + 1]) != id) {
      continue;
    }
    if (auto found = replies_.find(length - id - 2); found != replies_.end()) {
      prebuilt = &found->second;
      id_field = tail.substr(at);
    }
  }
  if (prebuilt == nullptr) {
    auto found = replies_.find(length);
    if (found == replies_.end()) return false;
    prebuilt = &found->second;
  }
  std::vector<grpc::Slice> slices;
  slices.reserve(prebuilt->slices.size() + 2);
  if (streamed) {
    std::string wrapper(1, kStreamInferResponseTag);
    PutVarint(wrapper,
              static_cast<uint64_t>(prebuilt->bytes) + id_field.size());
    slices.emplace_back(wrapper);
  }
  slices.insert(slices.end(), prebuilt->slices.begin(), prebuilt->slices.end());
  if (!id_field.empty()) slices.emplace_back(id_field);
  *reply = grpc::ByteBuffer(slices.data(), slices.size());
  return true;
}

std::string EchoReplies::Known() const {
  std::vector<std::string> known;
  for (const auto& [length, prebuilt] : replies_) {
    known.push_back(absl::StrCat(prebuilt.shape, " (", length, " bytes)"));
  }
  return absl::StrJoin(known, ", ");
}

}  // namespace reluserve
