#include "client/http_protocol.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/bfloat16.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

// The binary sections are little-endian, copied to and from floats as they
// are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "reluserve_client assumes a little-endian host");

namespace reluserve {
namespace {

using json = nlohmann::json;

constexpr char kFp32[] = "FP32";
constexpr char kBf16[] = "BF16";
// Nested "data" arrays deeper than this are refused, not recursed into.
constexpr int kMaxDataDepth = 64;
// How much of a body that is not {"error": ...} an error message keeps.
constexpr size_t kMaxErrorBody = 500;

// Bytes per element of the datatypes the client carries; 0 for others.
size_t ElementSize(absl::string_view datatype) {
  if (datatype == kFp32) return 4;
  if (datatype == kBf16) return 2;
  return 0;
}

// Names may be any bytes: invalid UTF-8 is replaced rather than thrown on.
std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::Status Malformed(absl::string_view problem) {
  return absl::InternalError(absl::StrCat("malformed response: ", problem));
}

json OutputParameters(
    const inference::ModelInferRequest::InferRequestedOutputTensor& output) {
  json parameters = json::object();
  for (const auto& [key, value] : output.parameters()) {
    switch (value.parameter_choice_case()) {
      case inference::InferParameter::kBoolParam:
        parameters[key] = value.bool_param();
        break;
      case inference::InferParameter::kInt64Param:
        parameters[key] = value.int64_param();
        break;
      case inference::InferParameter::kStringParam:
        parameters[key] = value.string_param();
        break;
      default:
        break;
    }
  }
  return parameters;
}

// One input's entry of "inputs", its bytes appended to `binary` (binary
// form) or its values as "data".
absl::Status EncodeInput(const inference::ModelInferRequest& request, int index,
                         bool binary_form, json& entry, std::string& binary) {
  const auto& input = request.inputs(index);
  const std::vector<int64_t> shape(input.shape().begin(), input.shape().end());
  const size_t element = ElementSize(input.datatype());
  if (element == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(input.name(), ": datatype \"", input.datatype(),
                     "\"; the HTTP client sends FP32 and BF16 only"));
  }
  absl::StatusOr<int64_t> count = NumElements(shape);
  if (!count.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(input.name(), ": ", count.status().message()));
  }
  std::string typed;
  absl::string_view bytes;
  if (request.raw_input_contents_size() > 0) {
    bytes = request.raw_input_contents(index);
  } else {
    const auto& values = input.contents().fp32_contents();
    typed.assign(reinterpret_cast<const char*>(values.data()),
                 values.size() * sizeof(float));
    bytes = typed;
  }
  if (bytes.size() != static_cast<uint64_t>(*count) * element) {
    return absl::InvalidArgumentError(
        absl::StrCat(input.name(), ": shape ", ShapeToString(shape), " needs ",
                     *count * static_cast<int64_t>(element), " bytes of ",
                     input.datatype(), ", the data has ", bytes.size()));
  }
  entry = {
      {"name", input.name()}, {"datatype", input.datatype()}, {"shape", shape}};
  if (binary_form) {
    entry["parameters"] = {{"binary_data_size", bytes.size()}};
    binary.append(bytes.data(), bytes.size());
    return absl::OkStatus();
  }
  if (input.datatype() != kFp32) {
    return absl::InvalidArgumentError(absl::StrCat(
        input.name(), ": ", input.datatype(),
        " travels only as binary data; send binary tensors (no --http-json)"));
  }
  std::vector<float> values(bytes.size() / sizeof(float));
  if (!values.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  json& data = entry["data"] = json::array();
  data.get_ref<json::array_t&>().reserve(values.size());
  for (float value : values) {
    if (!std::isfinite(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat(input.name(),
                       " holds NaN or Inf, which JSON cannot carry; send "
                       "binary tensors (no --http-json)"));
    }
    data.push_back(value);
  }
  return absl::OkStatus();
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

// Counts the numbers of a "data" array, flat or nested, appending them to
// `values` unless it is null. Null elements read as NaN.
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
    } else if (element.is_null()) {
      value = std::numeric_limits<float>::quiet_NaN();
    } else {
      return Malformed(absl::StrCat("data holds ", element.type_name()));
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
  const size_t element = ElementSize(view.datatype);
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

bool IsUnreserved(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

void AppendPercentEncoded(absl::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : text) {
    if (IsUnreserved(c)) {
      out.push_back(c);
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 15]);
    }
  }
}

}  // namespace

std::string HttpModelPath(absl::string_view model, absl::string_view version) {
  std::string path = "/v2/models/";
  AppendPercentEncoded(model, path);
  if (!version.empty()) {
    path += "/versions/";
    AppendPercentEncoded(version, path);
  }
  return path;
}

std::string HttpInferRequest::HeaderWithId(absl::string_view id) const {
  if (id.empty()) return json;
  std::string header = absl::StrCat("{\"id\":", Dump(std::string(id)));
  if (json.size() > 2) {
    absl::StrAppend(&header, ",", absl::string_view(json).substr(1));
  } else {
    header += "}";
  }
  return header;
}

const char* HttpInferRequest::content_type() const {
  return binary_form ? "application/octet-stream" : "application/json";
}

absl::StatusOr<HttpInferRequest> EncodeHttpInferRequest(
    const inference::ModelInferRequest& request, HttpTensors form) {
  const int raw = request.raw_input_contents_size();
  if (raw != 0 && raw != request.inputs_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        request.inputs_size(), " inputs but ", raw, " raw_input_contents"));
  }
  HttpInferRequest out;
  out.path = absl::StrCat(
      HttpModelPath(request.model_name(), request.model_version()), "/infer");
  out.id = request.id();
  out.binary_form = form == HttpTensors::kBinary;
  json header = json::object();
  json& inputs = header["inputs"] = json::array();
  for (int i = 0; i < request.inputs_size(); ++i) {
    json entry;
    if (absl::Status status =
            EncodeInput(request, i, out.binary_form, entry, out.binary);
        !status.ok()) {
      return status;
    }
    inputs.push_back(std::move(entry));
  }
  if (request.outputs_size() > 0) {
    json& outputs = header["outputs"] = json::array();
    for (const auto& output : request.outputs()) {
      json entry = {{"name", output.name()}};
      json parameters = OutputParameters(output);
      if (out.binary_form) parameters["binary_data"] = true;
      if (!parameters.empty()) entry["parameters"] = std::move(parameters);
      outputs.push_back(std::move(entry));
    }
  } else if (out.binary_form) {
    header["parameters"] = {{"binary_data_output", true}};
  }
  out.json = Dump(header);
  return out;
}

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

absl::StatusCode HttpStatusCode(int http_status) {
  if (http_status >= 200 && http_status < 300) return absl::StatusCode::kOk;
  switch (http_status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 413:
      return absl::StatusCode::kResourceExhausted;
    case 500:
      return absl::StatusCode::kInternal;
    case 501:
      return absl::StatusCode::kUnimplemented;
    case 503:
      return absl::StatusCode::kUnavailable;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return absl::StatusCode::kUnknown;
  }
}

absl::Status HttpError(int http_status, absl::string_view body) {
  const absl::StatusCode code = HttpStatusCode(http_status);
  if (code == absl::StatusCode::kOk) return absl::OkStatus();
  const json parsed = json::parse(body.begin(), body.end(), nullptr,
                                  /*allow_exceptions=*/false);
  if (parsed.is_object()) {
    if (const std::string* message = StringMember(parsed, "error")) {
      return absl::Status(code, *message);
    }
  }
  absl::string_view text = absl::StripAsciiWhitespace(body);
  if (text.empty())
    return absl::Status(code, absl::StrCat("HTTP ", http_status));
  if (text.size() > kMaxErrorBody) {
    return absl::Status(code,
                        absl::StrCat("HTTP ", http_status, ": ",
                                     text.substr(0, kMaxErrorBody), "..."));
  }
  return absl::Status(code, absl::StrCat("HTTP ", http_status, ": ", text));
}

absl::Status ParseJsonMessage(absl::string_view json_text,
                              google::protobuf::Message& message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(
      std::string(json_text), &message, options);
  if (status.ok()) return absl::OkStatus();
  return Malformed(
      absl::StrCat(message.GetTypeName(), ": ", std::string(status.message())));
}

}  // namespace reluserve
