#include "client/inference_client.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/http_client.h"

// The wire formats are little-endian; tensors are copied to and from them
// as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "reluserve_client assumes a little-endian host");

namespace reluserve {
namespace {

constexpr char kFp32[] = "FP32";

absl::Status AddInput(absl::string_view name, const Tensor& tensor,
                      inference::ModelInferRequest& request) {
  absl::StatusOr<int64_t> count = NumElements(tensor.shape);
  if (!count.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", count.status().message()));
  }
  if (static_cast<uint64_t>(*count) != tensor.data.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": shape ", ShapeToString(tensor.shape), " has ", *count,
        " elements but the data has ", tensor.data.size()));
  }
  inference::ModelInferRequest::InferInputTensor* input = request.add_inputs();
  input->set_name(std::string(name));
  input->set_datatype(kFp32);
  input->mutable_shape()->Add(tensor.shape.begin(), tensor.shape.end());
  request.add_raw_input_contents()->assign(
      reinterpret_cast<const char*>(tensor.data.data()),
      tensor.data.size() * sizeof(float));
  return absl::OkStatus();
}

}  // namespace

absl::string_view ProtocolName(Protocol protocol) {
  return protocol == Protocol::kHttp ? "http" : "grpc";
}

const char* DefaultTarget(Protocol protocol) {
  return protocol == Protocol::kHttp ? "127.0.0.1:8000" : "127.0.0.1:8001";
}

const Tensor* InferResult::Find(absl::string_view name) const {
  for (const NamedTensor& output : outputs) {
    if (output.name == name) return &output.tensor;
  }
  return nullptr;
}

absl::StatusOr<InferResult> InferenceClient::Infer(
    const InferInputs& inputs) const {
  absl::StatusOr<std::unique_ptr<PreparedInfer>> prepared = Prepare(inputs);
  if (!prepared.ok()) return prepared.status();
  return (*prepared)->Send();
}

std::unique_ptr<InferenceClient> CreateInferenceClient(Protocol protocol,
                                                       ClientOptions options) {
  if (protocol == Protocol::kHttp) {
    return std::make_unique<HttpClient>(std::move(options));
  }
  return std::make_unique<Client>(std::move(options));
}

absl::StatusOr<inference::ModelInferRequest> MakeInferRequest(
    const ClientOptions& options, const InferInputs& inputs) {
  inference::ModelInferRequest request;
  request.set_model_name(options.model_name);
  request.set_model_version(options.model_version);
  request.set_id(inputs.id);
  for (const NamedTensor& input : inputs.tensors) {
    if (absl::Status status = AddInput(input.name, input.tensor, request);
        !status.ok()) {
      return status;
    }
  }
  for (const std::string& name : inputs.output_names) {
    request.add_outputs()->set_name(name);
  }
  return request;
}

absl::Status CheckBatchSize(const InferInputs& inputs,
                            const inference::ModelConfig& config) {
  if (config.max_batch_size() <= 0 || inputs.tensors.empty() ||
      inputs.tensors.front().tensor.shape.empty()) {
    return absl::OkStatus();
  }
  const NamedTensor& first = inputs.tensors.front();
  const int64_t rows = first.tensor.shape[0];
  if (rows <= config.max_batch_size()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      first.name, " has ", rows, " rows, more than the maximum batch size of ",
      config.max_batch_size(), " that model \"", config.name(),
      "\" accepts (its ModelConfig max_batch_size; the server's --max-batch): "
      "send at most ",
      config.max_batch_size(), " rows per request"));
}

absl::StatusOr<ModelTensors> DescribeModel(
    const inference::ModelMetadataResponse& metadata,
    const inference::ModelConfig* config) {
  if (metadata.inputs_size() == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("model metadata of ", metadata.name(), " lists no input"));
  }
  ModelTensors model;
  for (int i = 0; i < metadata.inputs_size(); ++i) {
    const auto& tensor = metadata.inputs(i);
    const std::vector<int64_t> shape(tensor.shape().begin(),
                                     tensor.shape().end());
    const bool fixed =
        shape.size() >= 2 && std::all_of(shape.begin() + 1, shape.end(),
                                         [](int64_t dim) { return dim >= 0; });
    if (!fixed) {
      return absl::FailedPreconditionError(
          absl::StrCat("model metadata gives ", tensor.name(), " the shape ",
                       ShapeToString(shape), ": no fixed size per batch row"));
    }
    ModelInput input;
    input.name = tensor.name();
    input.row_shape.assign(shape.begin() + 1, shape.end());
    input.optional = i > 0;
    if (config != nullptr) {
      input.optional = false;
      for (const auto& described : config->input()) {
        if (described.name() == input.name)
          input.optional = described.optional();
      }
    }
    model.inputs.push_back(std::move(input));
  }
  for (const auto& tensor : metadata.outputs()) {
    model.outputs.push_back(tensor.name());
  }
  return model;
}

}  // namespace reluserve
