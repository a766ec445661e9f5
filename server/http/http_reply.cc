#include "server/http/http_reply.h"

#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/http/json_writer.h"

namespace reluserve {
namespace {

constexpr size_t kAlignment = 64;
// The longest text of one float and its comma: "-1.17549435e-38,".
constexpr int64_t kJsonBytesPerValue = 16;

std::string ShapeJson(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, shape[i]);
  }
  out.push_back(']');
  return out;
}

}  // namespace

void HttpReply::AlignedFree::operator()(std::byte* bytes) const {
  ::operator delete[](bytes, std::align_val_t(kAlignment));
}

HttpReply::HttpReply(const HttpInferRequest& request, int64_t max_binary_bytes)
    : request_(request), max_binary_bytes_(max_binary_bytes) {}

absl::StatusOr<int64_t> HttpReply::PlanBytes(const ValidatedRequest& validated,
                                             const ModelSignature& signature,
                                             const ModelConfig&) {
  int64_t binary_bytes = 0, json_bytes = 0;
  for (size_t i = 0; i < validated.outputs.size(); ++i) {
    const ValidatedRequest::Output& output = validated.outputs[i];
    const std::string& name =
        signature.outputs[static_cast<size_t>(output.index)].name;
    if (!request_.BinaryOutput(i)) {
      if (output.precision == Precision::kBFloat16) {
        return absl::InvalidArgumentError(absl::StrCat(
            "output '", name,
            "': datatype BF16 is sent only as binary data; ask for it with "
            "parameters.binary_data true (or the request's "
            "binary_data_output)"));
      }
      json_bytes += output.count * kJsonBytesPerValue;
    } else {
      binary_bytes +=
          output.count * static_cast<int64_t>(ElementBytes(output.precision));
    }
  }
  if (binary_bytes > max_binary_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the response's binary data would be ", binary_bytes,
        " bytes, above the server's send limit of ", max_binary_bytes_,
        " bytes; ask for fewer rows or outputs, or outputs in BF16"));
  }
  if (json_bytes > 16 * max_binary_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the response's JSON data could be ", json_bytes,
        " bytes, above 16 times the server's send limit of ", max_binary_bytes_,
        " bytes; ask for binary outputs (binary_data), fewer rows or fewer "
        "outputs"));
  }
  return binary_bytes + json_bytes;
}

void HttpReply::SetHeader(const ModelConfig& config) {
  model_name_ = config.name;
  model_version_ = config.version;
}

void* HttpReply::AddOutput(std::string_view name,
                           const ValidatedRequest::Output& output) {
  Output& added = outputs_.emplace_back();
  added.name = std::string(name);
  added.precision = output.precision;
  added.shape = output.shape;
  added.count = output.count;
  added.binary = request_.BinaryOutput(outputs_.size() - 1);
  // At least one byte: a zero-row output still has an address.
  const size_t bytes =
      static_cast<size_t>(output.count) * ElementBytes(output.precision) + 1;
  added.bytes.reset(static_cast<std::byte*>(
      ::operator new[](bytes, std::align_val_t(kAlignment))));
  return added.bytes.get();
}

void HttpReply::Clear() {
  outputs_.clear();
  header_.clear();
  has_binary_ = false;
}

void HttpReply::Finish() {
  std::string out =
      absl::StrCat("{\"model_name\":", JsonString(model_name_),
                   ",\"model_version\":", JsonString(model_version_));
  if (!request_.id.empty()) {
    absl::StrAppend(&out, ",\"id\":", JsonString(request_.id));
  }
  out.append(",\"outputs\":[");
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const Output& output = outputs_[i];
    if (i > 0) out.push_back(',');
    absl::StrAppend(&out, "{\"name\":", JsonString(output.name),
                    ",\"datatype\":\"", DatatypeName(output.precision),
                    "\",\"shape\":", ShapeJson(output.shape));
    if (output.binary) {
      has_binary_ = true;
      absl::StrAppend(&out, ",\"parameters\":{\"binary_data_size\":",
                      output.count * ElementBytes(output.precision), "}}");
    } else {
      out.append(",\"data\":");
      out.reserve(out.size() +
                  static_cast<size_t>(output.count * kJsonBytesPerValue));
      AppendJsonFloats(reinterpret_cast<const float*>(output.bytes.get()),
                       static_cast<size_t>(output.count), out);
      out.push_back('}');
    }
  }
  out.append("]}");
  header_ = std::move(out);
}

std::vector<std::string_view> HttpReply::binary_sections() const {
  std::vector<std::string_view> sections;
  for (const Output& output : outputs_) {
    if (!output.binary) continue;
    sections.emplace_back(
        reinterpret_cast<const char*>(output.bytes.get()),
        static_cast<size_t>(output.count) * ElementBytes(output.precision));
  }
  return sections;
}

size_t HttpReply::body_bytes() const {
  size_t bytes = header_.size();
  for (std::string_view section : binary_sections()) bytes += section.size();
  return bytes;
}

}  // namespace reluserve
