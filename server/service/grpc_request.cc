#include "server/service/grpc_request.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"

namespace reluserve {
namespace {

// The name of the first typed-contents field that holds values, or "".
const char* FilledContentsField(
    const inference::InferTensorContents& contents) {
  if (contents.fp32_contents_size() > 0) return "fp32_contents";
  if (contents.bool_contents_size() > 0) return "bool_contents";
  if (contents.int_contents_size() > 0) return "int_contents";
  if (contents.int64_contents_size() > 0) return "int64_contents";
  if (contents.uint_contents_size() > 0) return "uint_contents";
  if (contents.uint64_contents_size() > 0) return "uint64_contents";
  if (contents.fp64_contents_size() > 0) return "fp64_contents";
  if (contents.bytes_contents_size() > 0) return "bytes_contents";
  return "";
}

// The field of an InferParameter's oneof that is set, as the proto names it.
const char* ParameterChoiceName(const inference::InferParameter& parameter) {
  switch (parameter.parameter_choice_case()) {
    case inference::InferParameter::kBoolParam:
      return "bool_param";
    case inference::InferParameter::kInt64Param:
      return "int64_param";
    case inference::InferParameter::kStringParam:
      return "string_param";
    case inference::InferParameter::kDoubleParam:
      return "double_param";
    case inference::InferParameter::kUint64Param:
      return "uint64_param";
    case inference::InferParameter::PARAMETER_CHOICE_NOT_SET:
      break;
  }
  return "a parameter with no value";
}

// Wire sizes of the protobuf encoding (every field number here is below 16,
// so each tag is one byte).
int64_t VarintBytes(uint64_t value) {
  return static_cast<int64_t>(
      google::protobuf::io::CodedOutputStream::VarintSize64(value));
}

int64_t DelimitedField(int64_t length) {
  return 1 + VarintBytes(static_cast<uint64_t>(length)) + length;
}

// A proto3 string field: absent when empty.
int64_t StringField(size_t length) {
  return length == 0 ? 0 : DelimitedField(static_cast<int64_t>(length));
}

}  // namespace

absl::StatusOr<InferenceRequest> FromModelInferRequest(
    const inference::ModelInferRequest& request) {
  const int raw_count = request.raw_input_contents_size();
  if (raw_count > 0 && raw_count != request.inputs_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected one raw_input_contents entry per input (",
                     request.inputs_size(), "), got ", raw_count));
  }
  InferenceRequest neutral;
  neutral.inputs.resize(static_cast<size_t>(request.inputs_size()));
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& input = request.inputs(i);
    InferenceRequest::Input& out = neutral.inputs[static_cast<size_t>(i)];
    out.name = input.name();
    out.datatype = input.datatype();
    out.shape.assign(input.shape().begin(), input.shape().end());
    const std::string typed_field = FilledContentsField(input.contents());
    if (raw_count > 0) {
      if (!typed_field.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "input '", input.name(),
            "': expected its data either in raw_input_contents or in "
            "contents, not both; got raw_input_contents and contents.",
            typed_field));
      }
      // std::string storage comes from operator new (or the object itself
      // for short strings): aligned for float either way, no copy needed.
      const std::string& raw = request.raw_input_contents(i);
      out.data = raw.data();
      out.byte_size = static_cast<int64_t>(raw.size());
      out.data_field = "raw_input_contents";
      continue;
    }
    if (input.datatype() == "BF16") {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", input.name(),
          "': datatype BF16 has no typed contents field; expected its data "
          "in raw_input_contents"));
    }
    // Other datatypes are the runtime's to refuse, naming the accepted ones.
    if (input.datatype() == "FP32" && !typed_field.empty() &&
        typed_field != "fp32_contents") {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", input.name(), "': datatype ", input.datatype(),
          " expects its values in contents.fp32_contents, got "
          "contents.",
          typed_field));
    }
    const auto& values = input.contents().fp32_contents();
    out.data = values.data();
    out.byte_size = static_cast<int64_t>(values.size()) *
                    static_cast<int64_t>(sizeof(float));
    out.data_field = "contents.fp32_contents (or raw_input_contents)";
    out.counted_in_values = true;
  }
  neutral.outputs.resize(static_cast<size_t>(request.outputs_size()));
  for (int i = 0; i < request.outputs_size(); ++i) {
    const auto& requested = request.outputs(i);
    InferenceRequest::Output& out = neutral.outputs[static_cast<size_t>(i)];
    out.name = requested.name();
    if (auto parameter = requested.parameters().find(kDatatypeParameter);
        parameter != requested.parameters().end()) {
      if (!parameter->second.has_string_param()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "output '", requested.name(), "': expected parameter '",
            kDatatypeParameter,
            "' to be a string (string_param \"FP32\" or \"BF16\"), got ",
            ParameterChoiceName(parameter->second)));
      }
      out.datatype = parameter->second.string_param();
      out.datatype_given = true;
    }
  }
  return neutral;
}

int64_t ResponseBytes(const ValidatedRequest& validated,
                      const ModelSignature& signature,
                      const std::string& model_name,
                      const std::string& model_version, const std::string& id) {
  int64_t bytes = StringField(model_name.size()) +
                  StringField(model_version.size()) + StringField(id.size());
  for (const ValidatedRequest::Output& output : validated.outputs) {
    int64_t shape_bytes = 0;
    for (int64_t dim : output.shape) {
      shape_bytes += VarintBytes(static_cast<uint64_t>(dim));
    }
    const std::string& name =
        signature.outputs[static_cast<size_t>(output.index)].name;
    const int64_t tensor = StringField(name.size()) +
                           StringField(std::char_traits<char>::length(
                               DatatypeName(output.precision))) +
                           (shape_bytes == 0 ? 0 : DelimitedField(shape_bytes));
    bytes += DelimitedField(tensor);
    // A repeated bytes entry is written even when empty.
    bytes += DelimitedField(
        output.count * static_cast<int64_t>(ElementBytes(output.precision)));
  }
  return bytes;
}

int64_t StreamResponseBytes(int64_t infer_response_bytes) {
  return DelimitedField(infer_response_bytes);
}

absl::Status CheckResponseFits(int64_t response_bytes,
                               int64_t max_message_bytes, bool streamed) {
  const int64_t bytes =
      streamed ? StreamResponseBytes(response_bytes) : response_bytes;
  if (bytes <= max_message_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the response would be ", bytes,
      " bytes, above the server's send limit of ", max_message_bytes,
      " bytes; ask for fewer rows or outputs, outputs in BF16, or a shorter "
      "id"));
}

RuntimeRequest ToRuntimeRequest(const inference::ModelInferRequest& request,
                                bool streamed) {
  RuntimeRequest neutral;
  neutral.model_name = request.model_name();
  neutral.model_version = request.model_version();
  neutral.id = request.id();
  neutral.request = FromModelInferRequest(request);
  neutral.message_bytes = static_cast<int64_t>(request.ByteSizeLong());
  neutral.method = streamed ? "ModelStreamInfer" : "ModelInfer";
  return neutral;
}

absl::StatusOr<int64_t> GrpcReply::PlanBytes(const ValidatedRequest& validated,
                                             const ModelSignature& signature,
                                             const ModelConfig& config) {
  const int64_t bytes =
      ResponseBytes(validated, signature, config.name, config.version, id_);
  if (absl::Status fits = CheckResponseFits(bytes, max_send_bytes_, streamed_);
      !fits.ok()) {
    return fits;
  }
  return bytes;
}

void GrpcReply::SetHeader(const ModelConfig& config) {
  response_.SetHeader(config.name, config.version, id_);
}

void* GrpcReply::AddOutput(std::string_view name,
                           const ValidatedRequest::Output& output) {
  return response_.AddOutput(name, output);
}

void GrpcReply::Clear() { response_.Clear(); }

}  // namespace reluserve
