#include "server/http/http_infer_request.h"

#include <simdjson.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/http/request_body.h"

namespace reluserve {
namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

static_assert(RequestBody::kPadding >= simdjson::SIMDJSON_PADDING);

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError(message);
}

const char* TypeName(element_type type) {
  switch (type) {
    case element_type::ARRAY:
      return "an array";
    case element_type::OBJECT:
      return "an object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      return "a number";
    case element_type::STRING:
      return "a string";
    case element_type::BOOL:
      return "a boolean";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "a value";
}

// The member `key` of `parent` if present; `type` checked.
absl::StatusOr<std::optional<element>> Member(const object& parent,
                                              std::string_view key,
                                              element_type type,
                                              const std::string& where) {
  element value;
  if (parent.at_key(key).get(value) != simdjson::SUCCESS) return std::nullopt;
  const element_type got = value.type();
  const bool number_ok =
      type == element_type::UINT64 &&
      (got == element_type::INT64 || got == element_type::UINT64);
  if (got != type && !number_ok) {
    return Invalid(
        absl::StrCat(where, ": expected '", std::string(key), "' to be ",
                     type == element_type::UINT64 ? "a non-negative integer"
                                                  : TypeName(type),
                     ", got ", TypeName(got)));
  }
  return value;
}

// The string member `key` of `parent`, which must be there.
absl::StatusOr<std::string> RequiredString(const object& parent,
                                           std::string_view key,
                                           const std::string& where) {
  absl::StatusOr<std::optional<element>> value =
      Member(parent, key, element_type::STRING, where);
  if (!value.ok()) return value.status();
  if (!value->has_value()) {
    return Invalid(
        absl::StrCat(where, ": expected a '", std::string(key), "'"));
  }
  return std::string(std::string_view(**value));
}

// An entry of `inputs` or `outputs` (named `at`), which must be an object.
absl::StatusOr<object> EntryObject(const element& entry,
                                   const std::string& at) {
  if (entry.type() != element_type::OBJECT) {
    return Invalid(
        absl::StrCat(at, ": expected an object, got ", TypeName(entry.type())));
  }
  return object(entry);
}

absl::StatusOr<std::vector<int64_t>> ParseShape(const element& shape,
                                                const std::string& where) {
  std::vector<int64_t> dims;
  for (element dim : array(shape)) {
    int64_t value = 0;
    if (dim.get_int64().get(value) != simdjson::SUCCESS || value < 0) {
      return Invalid(absl::StrCat(
          where, ": expected 'shape' to hold non-negative integers, got ",
          simdjson::to_string(shape)));
    }
    dims.push_back(value);
  }
  return dims;
}

// Appends the numbers of `data`, flat or nested arrays, row-major.
absl::Status FlattenNumbers(const element& data, std::vector<float>& values,
                            const std::string& where) {
  for (element value : array(data)) {
    switch (value.type()) {
      case element_type::ARRAY:
        if (absl::Status nested = FlattenNumbers(value, values, where);
            !nested.ok()) {
          return nested;
        }
        break;
      case element_type::DOUBLE: {
        const double number = double(value);
        const auto narrowed = static_cast<float>(number);
        // Nothing is silently changed: beyond FP32's range is an error.
        if (std::isinf(narrowed)) {
          return Invalid(absl::StrCat(
              where, ": expected FP32 values, got ", simdjson::to_string(value),
              " at value ", values.size(),
              ", beyond FP32's range (send infinities as binary data)"));
        }
        values.push_back(narrowed);
        break;
      }
      case element_type::INT64:
        values.push_back(static_cast<float>(int64_t(value)));
        break;
      case element_type::UINT64:
        values.push_back(static_cast<float>(uint64_t(value)));
        break;
      default:
        return Invalid(absl::StrCat(where,
                                    ": expected 'data' to hold numbers (flat "
                                    "or in nested arrays), got ",
                                    TypeName(value.type()), " at value ",
                                    values.size()));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseInputs(const array& inputs, const char* binary,
                         size_t binary_bytes, HttpInferRequest& parsed) {
  size_t binary_used = 0;
  size_t index = 0;
  for (element entry : inputs) {
    const std::string at = absl::StrCat("inputs[", index++, "]");
    absl::StatusOr<object> entry_object = EntryObject(entry, at);
    if (!entry_object.ok()) return entry_object.status();
    const object& input = *entry_object;
    InferenceRequest::Input& out = parsed.request.inputs.emplace_back();
    absl::StatusOr<std::string> name = RequiredString(input, "name", at);
    if (!name.ok()) return name.status();
    out.name = *std::move(name);
    const std::string where = absl::StrCat("input '", out.name, "'");
    absl::StatusOr<std::string> datatype =
        RequiredString(input, "datatype", where);
    if (!datatype.ok()) return datatype.status();
    out.datatype = *std::move(datatype);
    absl::StatusOr<std::optional<element>> shape =
        Member(input, "shape", element_type::ARRAY, where);
    if (!shape.ok()) return shape.status();
    if (!shape->has_value()) {
      return Invalid(absl::StrCat(where, ": expected a 'shape'"));
    }
    absl::StatusOr<std::vector<int64_t>> dims = ParseShape(**shape, where);
    if (!dims.ok()) return dims.status();
    out.shape = *std::move(dims);

    absl::StatusOr<std::optional<element>> parameters =
        Member(input, "parameters", element_type::OBJECT, where);
    if (!parameters.ok()) return parameters.status();
    std::optional<element> binary_size;
    if (parameters->has_value()) {
      absl::StatusOr<std::optional<element>> size =
          Member(object(**parameters), "binary_data_size", element_type::UINT64,
                 absl::StrCat(where, " parameters"));
      if (!size.ok()) return size.status();
      binary_size = *size;
    }
    absl::StatusOr<std::optional<element>> data =
        Member(input, "data", element_type::ARRAY, where);
    if (!data.ok()) return data.status();

    if (binary_size.has_value()) {
      if (data->has_value()) {
        return Invalid(absl::StrCat(
            where,
            ": expected its values either in 'data' or as binary data "
            "(parameters.binary_data_size), got both"));
      }
      int64_t size = 0;
      if (binary_size->get_int64().get(size) != simdjson::SUCCESS || size < 0) {
        return Invalid(absl::StrCat(
            where,
            ": expected binary_data_size to be a non-negative integer, "
            "got ",
            simdjson::to_string(*binary_size)));
      }
      const auto bytes = static_cast<size_t>(size);
      if (bytes > binary_bytes - binary_used) {
        return Invalid(absl::StrCat(
            where, ": binary_data_size ", bytes,
            " goes beyond the body: ", binary_bytes - binary_used,
            " bytes of binary data are left after the inputs before it"));
      }
      out.data = binary + binary_used;
      out.byte_size = size;
      out.data_field = "its binary data (binary_data_size)";
      binary_used += bytes;
      continue;
    }
    if (!data->has_value()) {
      return Invalid(
          absl::StrCat(where,
                       ": expected its values in 'data' or as binary data "
                       "(parameters.binary_data_size), got neither"));
    }
    if (out.datatype == "BF16") {
      return Invalid(
          absl::StrCat(where,
                       ": datatype BF16 is accepted only as binary data "
                       "(parameters.binary_data_size), not in JSON 'data'"));
    }
    std::vector<float> values;
    if (absl::Status flat = FlattenNumbers(**data, values, where); !flat.ok()) {
      return flat;
    }
    out.byte_size = static_cast<int64_t>(values.size() * sizeof(float));
    // Moved, the vector keeps its buffer: the view stays valid.
    out.data = parsed.json_values.emplace_back(std::move(values)).data();
    out.data_field = "'data'";
    out.counted_in_values = true;
  }
  if (binary_used != binary_bytes) {
    return Invalid(absl::StrCat(
        "the body holds ", binary_bytes - binary_used,
        " bytes of binary data beyond the inputs' binary_data_size (",
        binary_used, " bytes declared, ", binary_bytes, " sent)"));
  }
  return absl::OkStatus();
}

absl::Status ParseOutputs(const array& outputs, HttpInferRequest& parsed) {
  size_t index = 0;
  for (element entry : outputs) {
    const std::string at = absl::StrCat("outputs[", index++, "]");
    absl::StatusOr<object> entry_object = EntryObject(entry, at);
    if (!entry_object.ok()) return entry_object.status();
    const object& output = *entry_object;
    absl::StatusOr<std::string> name = RequiredString(output, "name", at);
    if (!name.ok()) return name.status();
    InferenceRequest::Output& out = parsed.request.outputs.emplace_back();
    out.name = *std::move(name);
    bool binary = parsed.binary_data_output;
    const std::string where = absl::StrCat("output '", out.name, "'");
    absl::StatusOr<std::optional<element>> parameters =
        Member(output, "parameters", element_type::OBJECT, where);
    if (!parameters.ok()) return parameters.status();
    if (parameters->has_value()) {
      const object given(**parameters);
      const std::string in = absl::StrCat(where, " parameters");
      absl::StatusOr<std::optional<element>> binary_data =
          Member(given, "binary_data", element_type::BOOL, in);
      if (!binary_data.ok()) return binary_data.status();
      if (binary_data->has_value()) binary = bool(**binary_data);
      absl::StatusOr<std::optional<element>> datatype =
          Member(given, "datatype", element_type::STRING, in);
      if (!datatype.ok()) return datatype.status();
      if (datatype->has_value()) {
        out.datatype = std::string(std::string_view(**datatype));
        out.datatype_given = true;
      }
    }
    parsed.binary_outputs.push_back(binary);
  }
  return absl::OkStatus();
}

// What most likely made the JSON unreadable, when the body says.
std::string JsonErrorHint(std::string_view header, size_t binary_bytes) {
  // The replies write non-finite values so; a client may send them back.
  if (header.find("NaN") != std::string_view::npos ||
      header.find("Infinity") != std::string_view::npos) {
    return " (NaN and infinities have no JSON form: send tensors holding them "
           "as binary data, parameters.binary_data_size)";
  }
  if (binary_bytes > 0) {
    return absl::StrCat(" (read as the body's first ", header.size(),
                        " bytes, as ", kHeaderLength, " says)");
  }
  if (header.find("\"binary_data_size\"") != std::string_view::npos) {
    return absl::StrCat(" (binary data after the JSON needs the header ",
                        kHeaderLength, ": the JSON's length in bytes)");
  }
  return "";
}

}  // namespace

absl::StatusOr<HttpInferRequest> ParseHttpInferRequest(std::string_view header,
                                                       const char* binary,
                                                       size_t binary_bytes) {
  // One parser per thread keeps its buffers warm; one that grew for a huge
  // JSON body is dropped rather than held for ever.
  thread_local simdjson::dom::parser parser;
  constexpr size_t kKeptCapacity = size_t{64} << 20;
  struct Shrink {
    ~Shrink() {
      if (parser.capacity() > kKeptCapacity) parser = simdjson::dom::parser();
    }
  } shrink;
  element root;
  if (const auto error = parser
                             .parse(header.data(), header.size(),
                                    /*realloc_if_needed=*/false)
                             .get(root);
      error != simdjson::SUCCESS) {
    return Invalid(absl::StrCat(
        "the request body is not valid JSON: ", simdjson::error_message(error),
        JsonErrorHint(header, binary_bytes)));
  }
  if (root.type() != element_type::OBJECT) {
    return Invalid(
        absl::StrCat("expected the request to be a JSON object, got ",
                     TypeName(root.type())));
  }
  const object request(root);
  HttpInferRequest parsed;
  const char* const where = "the request";
  absl::StatusOr<std::optional<element>> id =
      Member(request, "id", element_type::STRING, where);
  if (!id.ok()) return id.status();
  if (id->has_value()) parsed.id = std::string(std::string_view(**id));
  absl::StatusOr<std::optional<element>> parameters =
      Member(request, "parameters", element_type::OBJECT, where);
  if (!parameters.ok()) return parameters.status();
  if (parameters->has_value()) {
    absl::StatusOr<std::optional<element>> binary_output =
        Member(object(**parameters), "binary_data_output", element_type::BOOL,
               "the request's parameters");
    if (!binary_output.ok()) return binary_output.status();
    if (binary_output->has_value()) {
      parsed.binary_data_output = bool(**binary_output);
    }
  }
  absl::StatusOr<std::optional<element>> inputs =
      Member(request, "inputs", element_type::ARRAY, where);
  if (!inputs.ok()) return inputs.status();
  if (!inputs->has_value()) {
    return Invalid("expected the request to have 'inputs'");
  }
  if (absl::Status read =
          ParseInputs(array(**inputs), binary, binary_bytes, parsed);
      !read.ok()) {
    return read;
  }
  absl::StatusOr<std::optional<element>> outputs =
      Member(request, "outputs", element_type::ARRAY, where);
  if (!outputs.ok()) return outputs.status();
  if (outputs->has_value()) {
    if (absl::Status read = ParseOutputs(array(**outputs), parsed);
        !read.ok()) {
      return read;
    }
  }
  return parsed;
}

}  // namespace reluserve
