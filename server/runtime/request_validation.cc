#include "server/runtime/request_validation.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace reluserve {
namespace {

using Input = InferenceRequest::Input;

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError(message);
}

std::string DatatypesString(const std::vector<Precision>& datatypes) {
  std::vector<std::string> names;
  for (Precision precision : datatypes)
    names.push_back(DatatypeName(precision));
  return absl::StrJoin(names, " or ");
}

std::string NamesString(const std::vector<TensorSpec>& specs) {
  std::vector<std::string> names;
  for (const TensorSpec& spec : specs) names.push_back(spec.name);
  return absl::StrJoin(names, ", ");
}

// 'x' (required) and 'grad_y' (optional).
std::string InputsString(const ModelSignature& signature) {
  std::vector<std::string> names;
  for (const TensorSpec& spec : signature.inputs) {
    names.push_back(absl::StrCat("'", spec.name, "' (",
                                 spec.optional ? "optional" : "required", ")"));
  }
  return absl::StrJoin(names, " and ");
}

bool Contains(const std::vector<Precision>& datatypes, Precision precision) {
  return std::find(datatypes.begin(), datatypes.end(), precision) !=
         datatypes.end();
}

// The element count of `input`'s shape, after checking that it has one, no
// negative dimension and stays addressable.
absl::StatusOr<int64_t> ElementCount(const Input& input) {
  if (input.shape.empty()) {
    return Invalid(
        absl::StrCat("input '", input.name, "': expected a shape, got none"));
  }
  int64_t count = 1;
  for (int64_t dim : input.shape) {
    if (dim < 0) {
      return Invalid(
          absl::StrCat("input '", input.name,
                       "': expected non-negative dimensions, got shape ",
                       ShapeString(input.shape)));
    }
    if (__builtin_mul_overflow(count, dim, &count) ||
        count > INT64_MAX / static_cast<int64_t>(sizeof(float))) {
      return Invalid(absl::StrCat("input '", input.name, "': shape ",
                                  ShapeString(input.shape), " overflows"));
    }
  }
  return count;
}

// The shape against the spec. `batch` is the batch of the inputs checked
// before (0: none yet), and is set from this one's first dimension.
absl::Status CheckShape(const Input& input, const TensorSpec& spec,
                        int64_t max_batch, int64_t* batch) {
  const bool batched = !spec.shape.empty() && spec.shape[0] == -1;
  const std::vector<int64_t>& shape = input.shape;
  std::string expected = SpecShapeString(spec);
  if (*batch > 0 && batched) {
    std::vector<int64_t> filled = spec.shape;
    filled[0] = *batch;
    expected = ShapeString(filled);
  }
  if (spec.reshapeable && spec.shape.size() == 2) {
    absl::StrAppend(&expected,
                    " or [N, d1, ..., dk] with d1·…·dk = ", spec.shape[1]);
  }
  const auto wrong = [&](const std::string& detail) {
    return Invalid(absl::StrCat("input '", input.name, "': expected shape ",
                                expected, ", got ", ShapeString(shape),
                                detail));
  };
  if (batched && !shape.empty() && shape[0] == 0 && shape.size() >= 2) {
    return Invalid(absl::StrCat(
        "input '", input.name,
        "': expected a batch of at least 1 row (N >= 1), got shape ",
        ShapeString(shape)));
  }
  if (spec.reshapeable && spec.shape.size() == 2) {
    if (shape.size() < 2) return wrong("");
    int64_t features = 1;
    bool overflowed = false;
    for (size_t i = 1; i < shape.size(); ++i) {
      overflowed |= __builtin_mul_overflow(features, shape[i], &features);
    }
    if (overflowed || features != spec.shape[1]) {
      return wrong(overflowed ? " (its features overflow)"
                              : absl::StrCat(" (", features, " features)"));
    }
  } else {
    if (shape.size() != spec.shape.size()) return wrong("");
    for (size_t i = batched ? 1 : 0; i < shape.size(); ++i) {
      if (shape[i] != spec.shape[i]) return wrong("");
    }
  }
  if (!batched) return absl::OkStatus();
  if (*batch > 0 && shape[0] != *batch) {
    return wrong(" (every input's first dimension is the batch)");
  }
  if (shape[0] > max_batch) {
    return Invalid(absl::StrCat(
        "input '", input.name, "': batch size ", shape[0],
        " exceeds the server's maximum batch size of ", max_batch));
  }
  *batch = shape[0];
  return absl::OkStatus();
}

absl::Status CheckByteCount(const Input& input, int64_t count,
                            Precision precision) {
  const auto element_bytes = static_cast<int64_t>(ElementBytes(precision));
  if (input.counted_in_values) {
    const int64_t values = input.byte_size / element_bytes;
    if (values == count) return absl::OkStatus();
    return Invalid(absl::StrCat("input '", input.name, "': expected ", count,
                                " values in ", input.data_field, " for shape ",
                                ShapeString(input.shape), ", got ", values));
  }
  const int64_t expected = count * element_bytes;
  if (input.byte_size == expected) return absl::OkStatus();
  return Invalid(absl::StrCat(
      "input '", input.name, "': expected ", expected, " bytes in ",
      input.data_field, " for ", input.datatype, " shape ",
      ShapeString(input.shape), ", got ", input.byte_size));
}

absl::Status CheckInputs(const InferenceRequest& request,
                         const ModelSignature& signature, int64_t max_batch,
                         ValidatedRequest& validated) {
  const size_t inputs = signature.inputs.size();
  // Per signature input, its index in the request.
  std::vector<int> given(inputs, -1);
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const std::string& name = request.inputs[i].name;
    const int index = signature.InputIndex(name);
    if (index < 0) {
      return Invalid(absl::StrCat("unknown input '", name, "'; expected ",
                                  InputsString(signature)));
    }
    if (given[index] >= 0) {
      return Invalid(
          absl::StrCat("input '", name, "' appears twice; expected it once"));
    }
    given[index] = static_cast<int>(i);
  }
  for (size_t s = 0; s < inputs; ++s) {
    const TensorSpec& spec = signature.inputs[s];
    if (given[s] < 0 && !spec.optional) {
      return Invalid(absl::StrCat("missing input '", spec.name, "': expected ",
                                  DatatypesString(spec.datatypes), " ",
                                  SpecShapeString(spec), ", got ",
                                  request.inputs.size(), " other input(s)"));
    }
  }

  validated.inputs.assign(inputs, nullptr);
  validated.input_shapes.assign(inputs, {});
  const Input* first = nullptr;  // sets the datatype of all
  int64_t batch = 0;
  for (size_t s = 0; s < inputs; ++s) {
    if (given[s] < 0) continue;
    const TensorSpec& spec = signature.inputs[s];
    const Input& input = request.inputs[static_cast<size_t>(given[s])];
    Precision precision;
    if (first == nullptr) {
      if (!ParseDatatype(input.datatype, &precision) ||
          !Contains(spec.datatypes, precision)) {
        return Invalid(absl::StrCat(
            "input '", input.name, "': expected datatype ",
            DatatypesString(spec.datatypes), ", got '", input.datatype, "'"));
      }
      first = &input;
      validated.input_precision = precision;
    } else if (input.datatype != first->datatype) {
      // One precision for all inputs: they meet in the same kernels.
      return Invalid(absl::StrCat(
          "input '", input.name, "': expected datatype ", first->datatype,
          " (as '", first->name, "'), got '", input.datatype, "'"));
    }
    absl::StatusOr<int64_t> count = ElementCount(input);
    if (!count.ok()) return count.status();
    if (absl::Status shape = CheckShape(input, spec, max_batch, &batch);
        !shape.ok()) {
      return shape;
    }
    if (absl::Status bytes =
            CheckByteCount(input, *count, validated.input_precision);
        !bytes.ok()) {
      return bytes;
    }
    validated.inputs[s] = input.data;
    validated.input_shapes[s] = input.shape;
  }
  validated.batch = batch;
  return absl::OkStatus();
}

void AddOutput(const ModelSignature& signature, int index, Precision precision,
               ValidatedRequest& validated) {
  const TensorSpec& spec = signature.outputs[static_cast<size_t>(index)];
  ValidatedRequest::Output output;
  output.index = index;
  output.precision = precision;
  if (!spec.shape_of.empty()) {
    output.shape = validated.input_shapes[static_cast<size_t>(
        signature.InputIndex(spec.shape_of))];
  } else {
    output.shape = spec.shape;
    for (int64_t& dim : output.shape) {
      if (dim == -1) dim = validated.batch;
    }
  }
  output.count = 1;
  for (int64_t dim : output.shape) output.count *= dim;
  if (!spec.needs.empty()) validated.backward = true;
  if (spec.shape.empty() || spec.shape[0] != -1) validated.row_wise = false;
  validated.outputs.push_back(std::move(output));
}

bool NeedsGiven(const ModelSignature& signature, const TensorSpec& spec,
                const ValidatedRequest& validated) {
  return spec.needs.empty() ||
         validated.inputs[static_cast<size_t>(
             signature.InputIndex(spec.needs))] != nullptr;
}

absl::Status CheckOutputs(const InferenceRequest& request,
                          const ModelSignature& signature,
                          ValidatedRequest& validated) {
  // Outputs go out in the inputs' datatype unless one asks otherwise.
  const Precision default_precision = validated.input_precision;
  if (request.outputs.empty()) {
    for (size_t i = 0; i < signature.outputs.size(); ++i) {
      if (NeedsGiven(signature, signature.outputs[i], validated)) {
        AddOutput(signature, static_cast<int>(i), default_precision, validated);
      }
    }
    return absl::OkStatus();
  }
  std::vector<bool> seen(signature.outputs.size(), false);
  for (const InferenceRequest::Output& requested : request.outputs) {
    const int index = signature.OutputIndex(requested.name);
    if (index < 0) {
      return Invalid(absl::StrCat("unknown output '", requested.name,
                                  "'; expected one of ",
                                  NamesString(signature.outputs)));
    }
    if (seen[static_cast<size_t>(index)]) {
      return Invalid(absl::StrCat("output '", requested.name,
                                  "' requested twice; expected it once"));
    }
    seen[static_cast<size_t>(index)] = true;
    const TensorSpec& spec = signature.outputs[static_cast<size_t>(index)];
    if (!NeedsGiven(signature, spec, validated)) {
      const TensorSpec& needed =
          signature
              .inputs[static_cast<size_t>(signature.InputIndex(spec.needs))];
      return Invalid(absl::StrCat(
          "output '", requested.name, "' needs input '", needed.name, "' (",
          DatatypesString(needed.datatypes), " ", SpecShapeString(needed),
          "), which the request does not have"));
    }
    Precision precision = default_precision;
    if (requested.datatype_given &&
        (!ParseDatatype(requested.datatype, &precision) ||
         !Contains(spec.datatypes, precision))) {
      return Invalid(absl::StrCat(
          "output '", requested.name, "': expected datatype ",
          DatatypesString(spec.datatypes), ", got '", requested.datatype, "'"));
    }
    AddOutput(signature, index, precision, validated);
  }
  return absl::OkStatus();
}

}  // namespace

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string SpecShapeString(const TensorSpec& spec) {
  std::vector<std::string> dims;
  for (int64_t dim : spec.shape) {
    dims.push_back(dim == -1 ? std::string("N") : absl::StrCat(dim));
  }
  return absl::StrCat("[", absl::StrJoin(dims, ", "), "]");
}

int64_t TensorBytes(const TensorSpec& spec, int64_t batch,
                    Precision precision) {
  int64_t count = 1;
  for (int64_t dim : spec.shape) count *= dim == -1 ? batch : dim;
  return count * static_cast<int64_t>(ElementBytes(precision));
}

absl::StatusOr<ValidatedRequest> ValidateRequest(
    const InferenceRequest& request, const ModelSignature& signature,
    int64_t max_batch) {
  ValidatedRequest validated;
  if (absl::Status inputs =
          CheckInputs(request, signature, max_batch, validated);
      !inputs.ok()) {
    return inputs;
  }
  if (absl::Status outputs = CheckOutputs(request, signature, validated);
      !outputs.ok()) {
    return outputs;
  }
  return validated;
}

}  // namespace reluserve
