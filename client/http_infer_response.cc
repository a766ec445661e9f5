#include "client/http_infer_response.h"

#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/bfloat16.h"
#include "nlohmann/json.hpp"

// The binary sections are little-endian, copied to floats as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "reluserve_client assumes a little-endian host");

namespace reluserve {
namespace {

using json = nlohmann::json;

constexpr char kFp32[] = "FP32";
constexpr char kBf16[] = "BF16";
// Nested "data" arrays deeper than this are refused, not recursed into.
constexpr int kMaxDataDepth = 64;

// Names may be any bytes: invalid UTF-8 is replaced rather than thrown on.
std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::Status Malformed(absl::string_view problem) {
  return MalformedHttpResponse(problem);
}

// One output of a response, pointing into the parsed header and the body.
struct OutputView {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
  int64_t count = 0;           // elements
  const json* data = nullptr;  // JSON form
  absl::string_view bytes;     // binary form
  bool binary = false;
};

// The response's header parsed and every output checked; the views point
// into `header` and the body, so it is filled in place and never moved.
struct ParsedResponse {
  json header;
  std::string model_name, model_version, id;
  std::vector<OutputView> outputs;
  int64_t binary_bytes = 0;
};

// ReluServe (as Python's json module) writes non-finite values as the bare
// words NaN, Infinity and -Infinity, which strict JSON has not: outside
// strings they become the strings "NaN", "Infinity" and "-Infinity", which
// FlattenData reads as the values. Nothing (an empty result) when the text
// has none.
std::string QuoteNonFiniteWords(absl::string_view text) {
  std::string out;
  size_t copied = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    for (absl::string_view word : {"NaN", "Infinity", "-Infinity"}) {
      if (text.substr(i, word.size()) != word) continue;
      absl::StrAppend(&out, text.substr(copied, i - copied), "\"", word, "\"");
      i += word.size() - 1;
      copied = i + 1;
      break;
    }
  }
  if (copied == 0) return "";
  absl::StrAppend(&out, text.substr(copied));
  return out;
}

// Counts the numbers of a "data" array, flat or nested, appending them to
// `values` unless it is null. Null and "NaN" read as NaN, "Infinity" and
// "-Infinity" as the infinities.
absl::Status FlattenData(const json& data, int depth, int64_t& count,
                         std::vector<float>* values) {
  if (depth > kMaxDataDepth) return Malformed("data nested too deeply");
  for (const json& element : data) {
    if (element.is_array()) {
      if (absl::Status status = FlattenData(element, depth + 1, count, values);
          !status.ok()) {
        return status;
      }
      continue;
    }
    float value;
    if (element.is_number()) {
      value = static_cast<float>(element.get<double>());
    } else if (element.is_null() || element == "NaN") {
      value = std::numeric_limits<float>::quiet_NaN();
    } else if (element == "Infinity") {
      value = std::numeric_limits<float>::infinity();
    } else if (element == "-Infinity") {
      value = -std::numeric_limits<float>::infinity();
    } else {
      return Malformed(absl::StrCat("data holds ", Dump(element)));
    }
    ++count;
    if (values != nullptr) values->push_back(value);
  }
  return absl::OkStatus();
}

const std::string* StringMember(const json& object, const char* key) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return nullptr;
  return &it->get_ref<const std::string&>();
}

absl::Status ParseOutput(const json& entry, absl::string_view binary,
                         int64_t& offset, OutputView& view) {
  if (!entry.is_object()) return Malformed("an output is no JSON object");
  const std::string* name = StringMember(entry, "name");
  const std::string* datatype = StringMember(entry, "datatype");
  const auto shape = entry.find("shape");
  if (name == nullptr || datatype == nullptr || shape == entry.end() ||
      !shape->is_array()) {
    return Malformed("an output lacks its name, datatype or shape");
  }
  view.name = *name;
  view.datatype = *datatype;
  for (const json& dim : *shape) {
    if (!dim.is_number_integer()) {
      return Malformed(
          absl::StrCat("output ", view.name, ": shape ", Dump(*shape)));
    }
    view.shape.push_back(dim.get<int64_t>());
  }
  absl::StatusOr<int64_t> count = NumElements(view.shape);
  if (!count.ok()) {
    return Malformed(
        absl::StrCat("output ", view.name, ": ", count.status().message()));
  }
  view.count = *count;
  const size_t element = HttpElementBytes(view.datatype);
  if (element == 0) {
    return Malformed(absl::StrCat("output ", view.name, " has datatype ",
                                  view.datatype, ", expected FP32 or BF16"));
  }
  const auto parameters = entry.find("parameters");
  if (parameters != entry.end() && parameters->is_object() &&
      parameters->contains("binary_data_size")) {
    const json& size = (*parameters)["binary_data_size"];
    const int64_t expected = view.count * static_cast<int64_t>(element);
    if (!size.is_number_unsigned() ||
        size.get<uint64_t>() != static_cast<uint64_t>(expected) ||
        offset + expected > static_cast<int64_t>(binary.size())) {
      return Malformed(absl::StrCat(
          "output ", view.name, " of shape ", ShapeToString(view.shape),
          " needs ", expected, " bytes of ", view.datatype,
          "; binary_data_size ", Dump(size), " with ",
          static_cast<int64_t>(binary.size()) - offset, " bytes left"));
    }
    view.binary = true;
    view.bytes = binary.substr(offset, expected);
    offset += expected;
    return absl::OkStatus();
  }
  const auto data = entry.find("data");
  if (data == entry.end() || !data->is_array()) {
    return Malformed(absl::StrCat("output ", view.name,
                                  " has neither data nor binary_data_size"));
  }
  if (view.datatype != kFp32) {
    return Malformed(absl::StrCat("output ", view.name, " is ", view.datatype,
                                  " in JSON; only FP32 travels as numbers"));
  }
  int64_t values = 0;
  if (absl::Status status = FlattenData(*data, 0, values, nullptr);
      !status.ok()) {
    return status;
  }
  if (values != view.count) {
    return Malformed(absl::StrCat("output ", view.name, " has shape ",
                                  ShapeToString(view.shape), " but ", values,
                                  " values"));
  }
  view.data = &*data;
  return absl::OkStatus();
}

absl::Status Parse(const HttpInferResponseBytes& response,
                   ParsedResponse& parsed) {
  absl::string_view text = response.body;
  absl::string_view binary;
  if (response.header_length.has_value()) {
    if (*response.header_length > response.body.size()) {
      return Malformed(absl::StrCat(kInferenceHeaderContentLength, " ",
                                    *response.header_length, " but only ",
                                    response.body.size(), " bytes"));
    }
    text = response.body.substr(0, *response.header_length);
    binary = response.body.substr(*response.header_length);
  }
  const std::string quoted = QuoteNonFiniteWords(text);
  if (!quoted.empty()) text = quoted;
  parsed.header = json::parse(text.begin(), text.end(), nullptr,
                              /*allow_exceptions=*/false);
  if (parsed.header.is_discarded() || !parsed.header.is_object()) {
    return Malformed("the header is no JSON object");
  }
  for (auto [key, field] : {std::pair{"model_name", &parsed.model_name},
                            std::pair{"model_version", &parsed.model_version},
                            std::pair{"id", &parsed.id}}) {
    if (const std::string* value = StringMember(parsed.header, key)) {
      *field = *value;
    }
  }
  const auto outputs = parsed.header.find("outputs");
  if (outputs != parsed.header.end()) {
    if (!outputs->is_array()) return Malformed("outputs is no array");
    int64_t offset = 0;
    for (const json& entry : *outputs) {
      OutputView& view = parsed.outputs.emplace_back();
      if (absl::Status status = ParseOutput(entry, binary, offset, view);
          !status.ok()) {
        return status;
      }
    }
    parsed.binary_bytes = offset;
  }
  if (parsed.binary_bytes != static_cast<int64_t>(binary.size())) {
    return Malformed(
        absl::StrCat(static_cast<int64_t>(binary.size()) - parsed.binary_bytes,
                     " bytes after the last output"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<InferResult> DecodeHttpInferResponse(
    const HttpInferResponseBytes& response) {
  ParsedResponse parsed;
  if (absl::Status status = Parse(response, parsed); !status.ok()) {
    return status;
  }
  InferResult result;
  result.model_name = std::move(parsed.model_name);
  result.model_version = std::move(parsed.model_version);
  result.id = std::move(parsed.id);
  result.outputs.reserve(parsed.outputs.size());
  for (OutputView& view : parsed.outputs) {
    NamedTensor& named = result.outputs.emplace_back();
    named.name = std::move(view.name);
    named.tensor.shape = std::move(view.shape);
    std::vector<float>& data = named.tensor.data;
    if (!view.binary) {
      int64_t count = 0;
      data.reserve(view.count);
      // Parse() checked the values already.
      FlattenData(*view.data, 0, count, &data).IgnoreError();
    } else if (view.datatype == kBf16) {
      data.resize(view.count);
      std::vector<uint16_t> halves(view.count);
      std::memcpy(halves.data(), view.bytes.data(), view.bytes.size());
      FromBfloat16(halves.data(), data.data(), halves.size());
    } else {
      data.resize(view.count);
      if (!view.bytes.empty()) {
        std::memcpy(data.data(), view.bytes.data(), view.bytes.size());
      }
    }
  }
  return result;
}

absl::StatusOr<HttpInferSummary> SummarizeHttpInferResponse(
    const HttpInferResponseBytes& response) {
  ParsedResponse parsed;
  if (absl::Status status = Parse(response, parsed); !status.ok()) {
    return status;
  }
  HttpInferSummary summary;
  summary.id = std::move(parsed.id);
  summary.outputs = static_cast<int>(parsed.outputs.size());
  summary.binary_bytes = parsed.binary_bytes;
  return summary;
}

}  // namespace reluserve
