#include "server/runtime/request_validation.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "server/core/sequential_model.h"
#include "server/core/weights.h"

namespace reluserve {
namespace {

// nn.Sequential(Linear(4, 3), ReLU, Linear(3, 2, bias=False)): x [N, 4],
// grad_y [N, 2]; y, grad_x, grad_0.weight, grad_0.bias, grad_2.weight.
const ModelSignature& Signature() {
  static const SequentialModel* model = [] {
    std::vector<SequentialLayerSpec> layers(2);
    layers[0].weights = MakeDefaultWeights(4, 3, 1);
    layers[0].module = "0";
    layers[0].weight_name = "0.weight";
    layers[0].bias_name = "0.bias";
    layers[1].weights = MakeDefaultWeights(3, 2, 2);
    layers[1].weights.bias.clear();
    layers[1].module = "2";
    layers[1].weight_name = "2.weight";
    return SequentialModel::Create(layers)->release();
  }();
  return model->signature();
}

constexpr int64_t kMaxBatch = 8;

struct Buffers {
  std::vector<float> x = std::vector<float>(3 * 4);
  std::vector<float> grad_y = std::vector<float>(3 * 2);
};

InferenceRequest::Input Input(const std::string& name,
                              std::vector<int64_t> shape,
                              const std::vector<float>& values,
                              const std::string& datatype = "FP32") {
  InferenceRequest::Input input;
  input.name = name;
  input.datatype = datatype;
  input.shape = std::move(shape);
  input.data = values.data();
  input.byte_size = static_cast<int64_t>(values.size() * sizeof(float));
  input.data_field = "raw_input_contents";
  return input;
}

InferenceRequest Request(const Buffers& buffers, bool with_grad_y) {
  InferenceRequest request;
  request.inputs.push_back(Input("x", {3, 2, 2}, buffers.x));
  if (with_grad_y)
    request.inputs.push_back(Input("grad_y", {3, 2}, buffers.grad_y));
  return request;
}

std::vector<std::string> OutputNames(const ValidatedRequest& validated) {
  std::vector<std::string> names;
  for (const auto& output : validated.outputs) {
    names.push_back(Signature().outputs[output.index].name);
  }
  return names;
}

TEST(ValidateRequestTest, ViewsTheRequestBytesWithoutCopying) {
  const Buffers buffers;
  absl::StatusOr<ValidatedRequest> validated =
      ValidateRequest(Request(buffers, true), Signature(), kMaxBatch);
  ASSERT_TRUE(validated.ok()) << validated.status();
  EXPECT_EQ(validated->batch, 3);
  EXPECT_EQ(validated->inputs[0], buffers.x.data());
  EXPECT_EQ(validated->inputs[1], buffers.grad_y.data());
  EXPECT_EQ(validated->input_shapes[0], (std::vector<int64_t>{3, 2, 2}));
}

TEST(ValidateRequestTest, DefaultOutputsFollowWhatTheInputsAllow) {
  const Buffers buffers;
  absl::StatusOr<ValidatedRequest> forward =
      ValidateRequest(Request(buffers, false), Signature(), kMaxBatch);
  ASSERT_TRUE(forward.ok());
  EXPECT_EQ(OutputNames(*forward), std::vector<std::string>{"y"});
  EXPECT_FALSE(forward->backward);
  EXPECT_TRUE(forward->row_wise);

  absl::StatusOr<ValidatedRequest> backward =
      ValidateRequest(Request(buffers, true), Signature(), kMaxBatch);
  ASSERT_TRUE(backward.ok());
  EXPECT_EQ(OutputNames(*backward),
            (std::vector<std::string>{"y", "grad_x", "grad_0.weight",
                                      "grad_0.bias", "grad_2.weight"}));
  EXPECT_TRUE(backward->backward);
  EXPECT_FALSE(backward->row_wise) << "parameter gradients sum the batch";
  // Shapes: y by the batch, grad_x as x came, parameters as the file.
  EXPECT_EQ(backward->outputs[0].shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(backward->outputs[1].shape, (std::vector<int64_t>{3, 2, 2}));
  EXPECT_EQ(backward->outputs[2].shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(backward->outputs[2].count, 12);
  EXPECT_EQ(backward->outputs[4].shape, (std::vector<int64_t>{2, 3}));
}

TEST(ValidateRequestTest, RequestedOutputsComeInTheirOrderWithTheirDatatypes) {
  const Buffers buffers;
  InferenceRequest request = Request(buffers, true);
  request.outputs = {{"grad_2.weight", "", false}, {"y", "BF16", true}};
  absl::StatusOr<ValidatedRequest> validated =
      ValidateRequest(request, Signature(), kMaxBatch);
  ASSERT_TRUE(validated.ok()) << validated.status();
  EXPECT_EQ(OutputNames(*validated),
            (std::vector<std::string>{"grad_2.weight", "y"}));
  EXPECT_EQ(validated->outputs[0].precision, Precision::kFloat32);
  EXPECT_EQ(validated->outputs[1].precision, Precision::kBFloat16);

  request.outputs = {{"y", "", false}};
  validated = ValidateRequest(request, Signature(), kMaxBatch);
  ASSERT_TRUE(validated.ok());
  EXPECT_FALSE(validated->backward) << "only y: no backward pass";
}

TEST(ValidateRequestTest, Bfloat16InputsTakeHalfTheBytes) {
  const Buffers buffers;
  InferenceRequest request = Request(buffers, true);
  for (auto& input : request.inputs) {
    input.datatype = "BF16";
    input.byte_size /= 2;
  }
  absl::StatusOr<ValidatedRequest> validated =
      ValidateRequest(request, Signature(), kMaxBatch);
  ASSERT_TRUE(validated.ok()) << validated.status();
  EXPECT_EQ(validated->input_precision, Precision::kBFloat16);
  EXPECT_EQ(validated->outputs[0].precision, Precision::kBFloat16);
}

// Each refusal names the tensor, what was expected and what came.
TEST(ValidateRequestTest, RefusalsSayWhatWasExpected) {
  struct Case {
    std::string name;
    std::function<void(InferenceRequest&)> spoil;
    std::vector<std::string> mentions;
  };
  const std::vector<Case> cases = {
      {"unknown input",
       [](auto& r) { r.inputs[1].name = "z"; },
       {"'z'", "'x' (required) and 'grad_y' (optional)"}},
      {"twice", [](auto& r) { r.inputs[1].name = "x"; }, {"'x'", "twice"}},
      {"missing x",
       [](auto& r) { r.inputs.erase(r.inputs.begin()); },
       {"missing input 'x'", "[N, 4]"}},
      {"datatype",
       [](auto& r) { r.inputs[0].datatype = "FP16"; },
       {"'x'", "FP32 or BF16", "FP16"}},
      {"mixed datatypes",
       [](auto& r) {
         r.inputs[0].datatype = "BF16";
         r.inputs[0].byte_size /= 2;
       },
       {"'grad_y'", "expected datatype BF16", "FP32"}},
      {"no shape",
       [](auto& r) { r.inputs[0].shape.clear(); },
       {"'x'", "a shape"}},
      {"negative",
       [](auto& r) { r.inputs[0].shape[0] = -1; },
       {"'x'", "non-negative", "[-1, 2, 2]"}},
      {"overflow",
       [](auto& r) {
         r.inputs[0].shape = {int64_t{1} << 40, int64_t{1} << 40};
       },
       {"'x'", "overflows"}},
      {"N = 0",
       [](auto& r) {
         r.inputs[0].shape = {0, 4};
         r.inputs[0].byte_size = 0;
       },
       {"'x'", "N >= 1", "[0, 4]"}},
      {"features",
       [](auto& r) {
         r.inputs[0].shape = {3, 5};
       },
       {"'x'", "[N, 4]", "d1·…·dk = 4", "[3, 5]", "5 features"}},
      {"rank",
       [](auto& r) { r.inputs[0].shape = {12}; },
       {"'x'", "[N, 4]", "[12]"}},
      {"grad_y shape",
       [](auto& r) {
         r.inputs[1].shape = {3, 3};
       },
       {"'grad_y'", "[3, 2]", "[3, 3]"}},
      {"batch mismatch",
       [](auto& r) {
         r.inputs[1].shape = {2, 2};
         r.inputs[1].byte_size = 16;
       },
       {"'grad_y'", "[3, 2]", "[2, 2]"}},
      {"above max batch",
       [](auto& r) {
         r.inputs[0].shape = {9, 4};
         r.inputs[0].byte_size = 9 * 16;
       },
       {"'x'", "9", "maximum batch size of 8"}},
      {"bytes",
       [](auto& r) { r.inputs[0].byte_size -= 1; },
       {"'x'", "48 bytes", "raw_input_contents", "47"}},
      {"values",
       [](auto& r) {
         r.inputs[0].counted_in_values = true;
         r.inputs[0].data_field = "contents.fp32_contents";
         r.inputs[0].byte_size = 11 * 4;
       },
       {"'x'", "12 values", "contents.fp32_contents", "11"}},
      {"unknown output",
       [](auto& r) {
         r.outputs = {{"logits", "", false}};
       },
       {"'logits'", "y, grad_x, grad_0.weight, grad_0.bias, grad_2.weight"}},
      {"output twice",
       [](auto& r) {
         r.outputs = {{"y", "", false}, {"y", "", false}};
       },
       {"'y'", "twice"}},
      {"gradient without grad_y",
       [](auto& r) {
         r.inputs.pop_back();
         r.outputs = {{"grad_2.weight", "", false}};
       },
       {"'grad_2.weight'", "needs input 'grad_y'", "[N, 2]"}},
      {"output datatype",
       [](auto& r) {
         r.outputs = {{"y", "FP16", true}};
       },
       {"'y'", "FP16", "FP32 or BF16"}},
  };
  const Buffers buffers;
  for (const Case& c : cases) {
    InferenceRequest request = Request(buffers, true);
    c.spoil(request);
    const absl::Status status =
        ValidateRequest(request, Signature(), kMaxBatch).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.name;
    for (const std::string& mention : c.mentions) {
      EXPECT_NE(status.message().find(mention), absl::string_view::npos)
          << c.name << ": '" << status.message() << "' lacks '" << mention
          << "'";
    }
  }
}

TEST(ValidateRequestTest, InferenceOnlyModelsRefuseGradY) {
  SequentialModelOptions options;
  options.backward = false;
  SequentialLayerSpec layer;
  layer.weights = MakeDefaultWeights(4, 2, 1);
  const auto model = SequentialModel::Create({layer}, options);
  ASSERT_TRUE(model.ok());
  const Buffers buffers;
  InferenceRequest request;
  request.inputs.push_back(Input("x", {3, 4}, buffers.x));
  request.inputs.push_back(Input("grad_y", {3, 2}, buffers.grad_y));
  const absl::Status status =
      ValidateRequest(request, (*model)->signature(), kMaxBatch).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("unknown input 'grad_y'"),
            absl::string_view::npos)
      << status;
}

TEST(ValidateRequestTest, TensorBytesAtABatch) {
  EXPECT_EQ(TensorBytes(Signature().inputs[0], 5, Precision::kFloat32),
            5 * 4 * 4);
  EXPECT_EQ(TensorBytes(Signature().outputs[2], 5, Precision::kBFloat16),
            3 * 4 * 2);
  EXPECT_EQ(SpecShapeString(Signature().inputs[0]), "[N, 4]");
}

}  // namespace
}  // namespace reluserve
