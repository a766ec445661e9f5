#include "server/service/request_validation.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/coded_stream.h"

namespace reluserve {
namespace {

std::string ShapeString(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The name of the first typed-contents field that holds values, or "".
absl::string_view FilledContentsField(
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

absl::StatusOr<Precision> ParseDatatype(absl::string_view datatype) {
  if (datatype == kFp32) return Precision::kFloat32;
  if (datatype == kBf16) return Precision::kBFloat16;
  return absl::InvalidArgumentError("unsupported datatype");
}

// The number of elements of an input, after checking that its datatype is
// `expected` and that its shape has no negative dimension and stays
// addressable.
absl::StatusOr<int64_t> CheckDatatypeAndCount(
    const inference::ModelInferRequest::InferInputTensor& input,
    absl::string_view expected) {
  if (input.datatype() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", input.name(), "': expected datatype ", expected,
                     ", got '", input.datatype(), "'"));
  }
  if (input.shape_size() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("input '", input.name(), "': expected a shape, got none"));
  }
  int64_t count = 1;
  for (int64_t dim : input.shape()) {
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name(),
                       "': expected non-negative dimensions, got shape ",
                       ShapeString(input.shape())));
    }
    if (__builtin_mul_overflow(count, dim, &count) ||
        count > INT64_MAX / static_cast<int64_t>(sizeof(float))) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", input.name(), "': shape ",
                       ShapeString(input.shape()), " overflows"));
    }
  }
  return count;
}

// The values of input `index`, from raw_input_contents or typed contents.
absl::StatusOr<const void*> CheckInputData(
    const inference::ModelInferRequest& request, int index, int64_t count,
    Precision precision) {
  const auto& input = request.inputs(index);
  const absl::string_view typed_field = FilledContentsField(input.contents());
  if (request.raw_input_contents_size() > 0) {
    if (!typed_field.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", input.name(),
          "': expected its data either in raw_input_contents or in contents, "
          "not both; got raw_input_contents and contents.",
          typed_field));
    }
    const std::string& raw = request.raw_input_contents(index);
    const int64_t expected_bytes =
        count * static_cast<int64_t>(ElementBytes(precision));
    if (static_cast<int64_t>(raw.size()) != expected_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", input.name(), "': expected ", expected_bytes,
          " bytes in raw_input_contents for ", input.datatype(), " shape ",
          ShapeString(input.shape()), ", got ", raw.size()));
    }
    // std::string storage comes from operator new (or the object itself for
    // short strings): aligned for float either way, so no copy is needed.
    return static_cast<const void*>(raw.data());
  }
  if (precision == Precision::kBFloat16) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", input.name(),
        "': datatype BF16 has no typed contents field; expected its data in "
        "raw_input_contents"));
  }
  if (!typed_field.empty() && typed_field != "fp32_contents") {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", input.name(),
        "': datatype FP32 expects its values in contents.fp32_contents, got "
        "contents.",
        typed_field));
  }
  const int64_t values = input.contents().fp32_contents_size();
  if (values != count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", input.name(), "': expected ", count,
        " values in contents.fp32_contents (or raw_input_contents) for shape ",
        ShapeString(input.shape()), ", got ", values));
  }
  return static_cast<const void*>(input.contents().fp32_contents().data());
}

absl::StatusOr<OutputTensor> ParseOutputName(absl::string_view name) {
  if (name == kOutputY) return OutputTensor::kY;
  if (name == kOutputGradX) return OutputTensor::kGradX;
  if (name == kOutputGradWeight) return OutputTensor::kGradWeight;
  if (name == kOutputGradBias) return OutputTensor::kGradBias;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown output '", name,
                   "'; expected one of y, grad_x, grad_weight, grad_bias"));
}

absl::Status CheckXShape(
    const inference::ModelInferRequest::InferInputTensor& x,
    const ModelConfig& model) {
  const auto& shape = x.shape();
  const std::string expected =
      absl::StrCat("[N, ", model.in_features,
                   "] or [N, d1, ..., dk] with d1·…·dk = ", model.in_features);
  if (shape.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input 'x': expected shape ", expected, ", got ", ShapeString(shape)));
  }
  if (shape[0] == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input 'x': expected a batch of at least 1 row (N >= 1), got shape ",
        ShapeString(shape)));
  }
  int64_t features = 1;
  bool overflowed = false;
  for (int i = 1; i < shape.size(); ++i) {
    overflowed |= __builtin_mul_overflow(features, shape[i], &features);
  }
  if (overflowed || features != model.in_features) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input 'x': expected shape ", expected, ", got ", ShapeString(shape),
        overflowed ? " (its features overflow)"
                   : absl::StrCat(" (", features, " features)")));
  }
  if (shape[0] > model.max_batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input 'x': batch size ", shape[0],
        " exceeds the server's maximum batch size of ", model.max_batch));
  }
  return absl::OkStatus();
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

// What InferenceService puts in the response: model_name, model_version,
// id, then per output an InferOutputTensor (name, datatype, packed shape) and
// a raw_output_contents entry.
int64_t ResponseBytes(const inference::ModelInferRequest& request,
                      const ValidatedInferRequest& validated,
                      const ModelConfig& model) {
  int64_t bytes = StringField(model.name.size()) +
                  StringField(model.version.size()) +
                  StringField(request.id().size());
  for (const RequestedOutput& output : validated.outputs) {
    int64_t shape_bytes = 0, count = 1;
    for (int64_t dim : OutputShape(validated, output.tensor, model)) {
      shape_bytes += VarintBytes(static_cast<uint64_t>(dim));
      count *= dim;
    }
    const absl::string_view datatype =
        output.precision == Precision::kBFloat16 ? kBf16 : kFp32;
    const int64_t tensor = StringField(OutputName(output.tensor).size()) +
                           StringField(datatype.size()) +
                           (shape_bytes == 0 ? 0 : DelimitedField(shape_bytes));
    bytes += DelimitedField(tensor);
    // A repeated bytes entry is written even when empty.
    bytes += DelimitedField(
        count * static_cast<int64_t>(ElementBytes(output.precision)));
  }
  return bytes;
}

// Every check on the tensors and the outputs asked for.
absl::StatusOr<ValidatedInferRequest> ValidateTensors(
    const inference::ModelInferRequest& request, const ModelConfig& model);

}  // namespace

absl::string_view OutputName(OutputTensor output) {
  switch (output) {
    case OutputTensor::kY:
      return kOutputY;
    case OutputTensor::kGradX:
      return kOutputGradX;
    case OutputTensor::kGradWeight:
      return kOutputGradWeight;
    case OutputTensor::kGradBias:
      return kOutputGradBias;
  }
  return "";
}

bool ValidatedInferRequest::NeedsBackward() const {
  return std::any_of(outputs.begin(), outputs.end(),
                     [](const RequestedOutput& output) {
                       return output.tensor != OutputTensor::kY;
                     });
}

absl::Status CheckModelSelected(absl::string_view name,
                                absl::string_view version,
                                const ModelConfig& model) {
  if (name != model.name) {
    return absl::NotFoundError(absl::StrCat(
        "unknown model '", name, "'; this server serves '", model.name, "'"));
  }
  if (!version.empty() && version != model.version) {
    return absl::NotFoundError(
        absl::StrCat("unknown version '", version, "' of model '", model.name,
                     "'; this server serves version ", model.version));
  }
  return absl::OkStatus();
}

std::vector<int64_t> OutputShape(const ValidatedInferRequest& request,
                                 OutputTensor output,
                                 const ModelConfig& model) {
  const int64_t k = model.in_features, m = model.out_features;
  switch (output) {
    case OutputTensor::kY:
      return {request.batch, m};
    case OutputTensor::kGradX:
      return request.x_shape;
    case OutputTensor::kGradWeight:
      return {m, k};
    case OutputTensor::kGradBias:
      return {m};
  }
  return {};
}

int64_t StreamResponseBytes(int64_t infer_response_bytes) {
  return DelimitedField(infer_response_bytes);
}

absl::Status CheckResponseFits(const ValidatedInferRequest& request,
                               int64_t max_message_bytes, bool streamed) {
  const int64_t bytes = streamed ? StreamResponseBytes(request.response_bytes)
                                 : request.response_bytes;
  if (bytes <= max_message_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the response would be ", bytes,
      " bytes, above the server's send limit of ", max_message_bytes,
      " bytes; ask for fewer rows or outputs, outputs in BF16, or a shorter "
      "id"));
}

absl::StatusOr<ValidatedInferRequest> ValidateInferRequest(
    const inference::ModelInferRequest& request, const ModelConfig& model) {
  if (absl::Status selected = CheckModelSelected(
          request.model_name(), request.model_version(), model);
      !selected.ok()) {
    return selected;
  }
  absl::StatusOr<ValidatedInferRequest> validated =
      ValidateTensors(request, model);
  if (validated.ok()) {
    validated->response_bytes = ResponseBytes(request, *validated, model);
  }
  return validated;
}

namespace {

absl::StatusOr<ValidatedInferRequest> ValidateTensors(
    const inference::ModelInferRequest& request, const ModelConfig& model) {
  const int raw_count = request.raw_input_contents_size();
  if (raw_count > 0 && raw_count != request.inputs_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected one raw_input_contents entry per input (",
                     request.inputs_size(), "), got ", raw_count));
  }

  int x_index = -1, grad_y_index = -1;
  for (int i = 0; i < request.inputs_size(); ++i) {
    const std::string& name = request.inputs(i).name();
    int* slot = name == kInputX       ? &x_index
                : name == kInputGradY ? &grad_y_index
                                      : nullptr;
    if (slot == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown input '", name,
                       "'; expected 'x' (required) and 'grad_y' (optional)"));
    }
    if (*slot >= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", name, "' appears twice; expected it once"));
    }
    *slot = i;
  }
  if (x_index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("missing input 'x': expected FP32 [N, ", model.in_features,
                     "], got ", request.inputs_size(), " other input(s)"));
  }

  ValidatedInferRequest validated;
  const auto& x = request.inputs(x_index);
  absl::StatusOr<Precision> precision = ParseDatatype(x.datatype());
  if (!precision.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input 'x': expected datatype FP32 or BF16, got '", x.datatype(), "'"));
  }
  validated.input_precision = *precision;
  absl::StatusOr<int64_t> x_count = CheckDatatypeAndCount(x, x.datatype());
  if (!x_count.ok()) return x_count.status();
  if (absl::Status shape = CheckXShape(x, model); !shape.ok()) return shape;
  absl::StatusOr<const void*> x_data =
      CheckInputData(request, x_index, *x_count, *precision);
  if (!x_data.ok()) return x_data.status();
  validated.batch = x.shape(0);
  validated.x = *x_data;
  validated.x_shape.assign(x.shape().begin(), x.shape().end());

  if (grad_y_index >= 0) {
    const auto& grad_y = request.inputs(grad_y_index);
    // One precision for both inputs: they meet in the same kernels.
    absl::StatusOr<int64_t> grad_y_count =
        CheckDatatypeAndCount(grad_y, x.datatype());
    if (!grad_y_count.ok()) return grad_y_count.status();
    if (grad_y.shape_size() != 2 || grad_y.shape(0) != validated.batch ||
        grad_y.shape(1) != model.out_features) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input 'grad_y': expected shape [", validated.batch, ", ",
          model.out_features, "] (x's batch by the model's outputs), got ",
          ShapeString(grad_y.shape())));
    }
    absl::StatusOr<const void*> grad_y_data =
        CheckInputData(request, grad_y_index, *grad_y_count, *precision);
    if (!grad_y_data.ok()) return grad_y_data.status();
    validated.grad_y = *grad_y_data;
  }

  // Outputs go out in x's datatype unless a "datatype" parameter says.
  if (request.outputs_size() == 0) {
    validated.outputs = {{OutputTensor::kY, *precision}};
    if (validated.grad_y != nullptr) {
      for (OutputTensor gradient :
           {OutputTensor::kGradX, OutputTensor::kGradWeight,
            OutputTensor::kGradBias}) {
        validated.outputs.push_back({gradient, *precision});
      }
    }
    return validated;
  }
  for (const auto& requested : request.outputs()) {
    absl::StatusOr<OutputTensor> output = ParseOutputName(requested.name());
    if (!output.ok()) return output.status();
    if (std::any_of(validated.outputs.begin(), validated.outputs.end(),
                    [&](const RequestedOutput& earlier) {
                      return earlier.tensor == *output;
                    })) {
      return absl::InvalidArgumentError(absl::StrCat(
          "output '", requested.name(), "' requested twice; expected it once"));
    }
    if (*output != OutputTensor::kY && validated.grad_y == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "output '", requested.name(),
          "' needs input 'grad_y' (the upstream gradient, FP32 [N, ",
          model.out_features, "]), which the request does not have"));
    }
    Precision output_precision = *precision;
    if (auto parameter = requested.parameters().find(kDatatypeParameter);
        parameter != requested.parameters().end()) {
      absl::StatusOr<Precision> asked =
          ParseDatatype(parameter->second.string_param());
      if (!asked.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "output '", requested.name(), "': parameter '", kDatatypeParameter,
            "' expects string \"FP32\" or \"BF16\", got '",
            parameter->second.string_param(), "'"));
      }
      output_precision = *asked;
    }
    validated.outputs.push_back({*output, output_precision});
  }
  return validated;
}

}  // namespace
}  // namespace reluserve
