#include "server/service/grpc_request.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/runtime/request_validation.h"
#include "tests/support/model_testing.h"

namespace reluserve {
namespace {

// One nn.Linear(4, 2) + ReLU: x, grad_y; y, grad_x, grad_weight, grad_bias.
const ModelSignature& Signature() {
  static const auto* model = new std::shared_ptr<const SequentialModel>(
      testing::SingleLayerModel(MakeDefaultWeights(4, 2, 1)));
  return (*model)->signature();
}

inference::ModelInferRequest RawRequest(bool with_grad_y) {
  inference::ModelInferRequest request;
  request.set_model_name("linear_relu");
  auto* x = request.add_inputs();
  x->set_name("x");
  x->set_datatype("FP32");
  x->add_shape(3);
  x->add_shape(2);
  x->add_shape(2);
  request.add_raw_input_contents(std::string(3 * 4 * 4, '\0'));
  if (with_grad_y) {
    auto* grad_y = request.add_inputs();
    grad_y->set_name("grad_y");
    grad_y->set_datatype("FP32");
    grad_y->add_shape(3);
    grad_y->add_shape(2);
    request.add_raw_input_contents(std::string(3 * 2 * 4, '\0'));
  }
  return request;
}

TEST(FromModelInferRequestTest, ViewsRawBytesWithoutCopying) {
  const inference::ModelInferRequest request = RawRequest(true);
  absl::StatusOr<InferenceRequest> neutral = FromModelInferRequest(request);
  ASSERT_TRUE(neutral.ok()) << neutral.status();
  ASSERT_EQ(neutral->inputs.size(), 2u);
  EXPECT_EQ(neutral->inputs[0].name, "x");
  EXPECT_EQ(neutral->inputs[0].shape, (std::vector<int64_t>{3, 2, 2}));
  EXPECT_EQ(neutral->inputs[0].data, request.raw_input_contents(0).data());
  EXPECT_EQ(neutral->inputs[0].byte_size, 48);
  EXPECT_EQ(neutral->inputs[1].data, request.raw_input_contents(1).data());
  EXPECT_FALSE(neutral->inputs[0].counted_in_values);
}

TEST(FromModelInferRequestTest, TypedContentsAreViewedInPlace) {
  inference::ModelInferRequest request = RawRequest(false);
  request.clear_raw_input_contents();
  for (int i = 0; i < 12; ++i) {
    request.mutable_inputs(0)->mutable_contents()->add_fp32_contents(i);
  }
  absl::StatusOr<InferenceRequest> neutral = FromModelInferRequest(request);
  ASSERT_TRUE(neutral.ok()) << neutral.status();
  EXPECT_EQ(neutral->inputs[0].data,
            request.inputs(0).contents().fp32_contents().data());
  EXPECT_TRUE(neutral->inputs[0].counted_in_values);
  absl::StatusOr<ValidatedRequest> validated =
      ValidateRequest(*neutral, Signature(), 8);
  ASSERT_TRUE(validated.ok()) << validated.status();
  EXPECT_EQ(static_cast<const float*>(validated->inputs[0])[11], 11.0f);
}

TEST(FromModelInferRequestTest, OutputDatatypeParameterIsPassedOn) {
  inference::ModelInferRequest request = RawRequest(true);
  auto* grad_x = request.add_outputs();
  grad_x->set_name("grad_x");
  (*grad_x->mutable_parameters())[kDatatypeParameter].set_string_param("BF16");
  request.add_outputs()->set_name("y");
  absl::StatusOr<InferenceRequest> neutral = FromModelInferRequest(request);
  ASSERT_TRUE(neutral.ok());
  ASSERT_EQ(neutral->outputs.size(), 2u);
  EXPECT_EQ(neutral->outputs[0].name, "grad_x");
  EXPECT_TRUE(neutral->outputs[0].datatype_given);
  EXPECT_EQ(neutral->outputs[0].datatype, "BF16");
  EXPECT_FALSE(neutral->outputs[1].datatype_given);
}

// A "datatype" parameter of another type is refused, naming what was sent,
// rather than read as the empty string.
TEST(FromModelInferRequestTest, OutputDatatypeParameterMustBeAString) {
  inference::ModelInferRequest request = RawRequest(true);
  auto* y = request.add_outputs();
  y->set_name("y");
  (*y->mutable_parameters())[kDatatypeParameter].set_int64_param(5);
  const absl::Status status = FromModelInferRequest(request).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  for (const char* mention : {"output 'y'", "'datatype'", "a string",
                              "string_param", "got int64_param"}) {
    EXPECT_NE(status.message().find(mention), absl::string_view::npos)
        << mention << ": " << status;
  }
  (*y->mutable_parameters())[kDatatypeParameter].Clear();
  EXPECT_NE(FromModelInferRequest(request).status().message().find(
                "got a parameter with no value"),
            absl::string_view::npos);
}

// The checks only the gRPC wire has.
TEST(FromModelInferRequestTest, WireRefusalsNameTheTensor) {
  {
    inference::ModelInferRequest request = RawRequest(true);
    request.mutable_raw_input_contents()->RemoveLast();
    const absl::Status status = FromModelInferRequest(request).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("one raw_input_contents entry per input"),
              absl::string_view::npos)
        << status;
  }
  {
    inference::ModelInferRequest request = RawRequest(true);
    request.mutable_inputs(1)->mutable_contents()->add_fp32_contents(1.0f);
    const absl::Status status = FromModelInferRequest(request).status();
    EXPECT_NE(status.message().find("'grad_y'"), absl::string_view::npos);
    EXPECT_NE(status.message().find("not both"), absl::string_view::npos);
  }
  {
    inference::ModelInferRequest request = RawRequest(false);
    request.clear_raw_input_contents();
    request.mutable_inputs(0)->set_datatype("BF16");
    const absl::Status status = FromModelInferRequest(request).status();
    EXPECT_NE(status.message().find("BF16 has no typed contents field"),
              absl::string_view::npos)
        << status;
  }
  {
    inference::ModelInferRequest request = RawRequest(false);
    request.clear_raw_input_contents();
    request.mutable_inputs(0)->mutable_contents()->add_int_contents(1);
    const absl::Status status = FromModelInferRequest(request).status();
    EXPECT_NE(status.message().find("contents.fp32_contents, got "
                                    "contents.int_contents"),
              absl::string_view::npos)
        << status;
  }
}

// The response the service would build, by hand, against the size computed
// before it exists; and the stream's wrapper around it.
TEST(ResponseBytesTest, AreExact) {
  inference::ModelInferRequest request = RawRequest(true);
  request.set_id(std::string(200, 'i'));  // a two-byte length
  request.add_outputs()->set_name("grad_x");
  auto* y = request.add_outputs();
  y->set_name("y");
  (*y->mutable_parameters())[kDatatypeParameter].set_string_param("BF16");
  absl::StatusOr<InferenceRequest> neutral = FromModelInferRequest(request);
  ASSERT_TRUE(neutral.ok());
  absl::StatusOr<ValidatedRequest> validated =
      ValidateRequest(*neutral, Signature(), 8);
  ASSERT_TRUE(validated.ok()) << validated.status();
  const int64_t bytes =
      ResponseBytes(*validated, Signature(), "linear_relu", "1", request.id());

  inference::ModelInferResponse response;
  response.set_model_name("linear_relu");
  response.set_model_version("1");
  response.set_id(request.id());
  auto* grad_x = response.add_outputs();
  grad_x->set_name("grad_x");
  grad_x->set_datatype("FP32");
  for (int64_t dim : {3, 2, 2}) grad_x->add_shape(dim);
  response.add_raw_output_contents(std::string(3 * 4 * 4, '\0'));
  auto* y_out = response.add_outputs();
  y_out->set_name("y");
  y_out->set_datatype("BF16");
  for (int64_t dim : {3, 2}) y_out->add_shape(dim);
  response.add_raw_output_contents(std::string(3 * 2 * 2, '\0'));
  EXPECT_EQ(bytes, static_cast<int64_t>(response.ByteSizeLong()));

  inference::ModelStreamInferResponse wrapped;
  *wrapped.mutable_infer_response() = response;
  EXPECT_EQ(StreamResponseBytes(bytes),
            static_cast<int64_t>(wrapped.ByteSizeLong()));
}

TEST(ResponseBytesTest, MustFitTheSendLimit) {
  const int64_t bytes = 1000;
  EXPECT_TRUE(CheckResponseFits(bytes, bytes, /*streamed=*/false).ok());
  const absl::Status unary =
      CheckResponseFits(bytes, bytes - 1, /*streamed=*/false);
  EXPECT_EQ(unary.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unary.message().find(absl::StrCat(
                "would be ", bytes, " bytes, above the server's send limit of ",
                bytes - 1, " bytes")),
            absl::string_view::npos)
      << unary;
  // The stream's wrapper adds a tag and a length.
  EXPECT_FALSE(CheckResponseFits(bytes, bytes, /*streamed=*/true).ok());
  EXPECT_TRUE(
      CheckResponseFits(bytes, StreamResponseBytes(bytes), /*streamed=*/true)
          .ok());
}

}  // namespace
}  // namespace reluserve
