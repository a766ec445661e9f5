#include "client/http_protocol.h"

#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"

// The binary section is little-endian, copied from floats as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "reluserve_client assumes a little-endian host");

namespace reluserve {
namespace {

using json = nlohmann::json;

constexpr char kFp32[] = "FP32";
// How much of a body that is not {"error": ...} an error message keeps.
constexpr size_t kMaxErrorBody = 500;

// Names may be any bytes: invalid UTF-8 is replaced rather than thrown on.
std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
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
  const size_t element = HttpElementBytes(input.datatype());
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

size_t HttpElementBytes(absl::string_view datatype) {
  if (datatype == "FP32") return 4;
  if (datatype == "BF16") return 2;
  return 0;
}

absl::Status MalformedHttpResponse(absl::string_view problem) {
  return absl::InternalError(absl::StrCat("malformed response: ", problem));
}

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
    const auto message = parsed.find("error");
    if (message != parsed.end() && message->is_string()) {
      return absl::Status(code, message->get<std::string>());
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
  return MalformedHttpResponse(
      absl::StrCat(message.GetTypeName(), ": ", std::string(status.message())));
}

}  // namespace reluserve
