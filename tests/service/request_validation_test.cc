#include "server/service/request_validation.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace reluserve {
namespace {

ModelConfig SmallModel() {
  ModelConfig model;
  model.in_features = 4;
  model.out_features = 2;
  model.max_batch = 8;
  return model;
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

TEST(ValidateInferRequestTest, ViewsTheRequestBytesWithoutCopying) {
  const inference::ModelInferRequest request = RawRequest(true);
  absl::StatusOr<ValidatedInferRequest> validated =
      ValidateInferRequest(request, SmallModel());
  ASSERT_TRUE(validated.ok()) << validated.status();
  EXPECT_EQ(validated->batch, 3);
  EXPECT_EQ(static_cast<const void*>(validated->x),
            request.raw_input_contents(0).data());
  EXPECT_EQ(static_cast<const void*>(validated->grad_y),
            request.raw_input_contents(1).data());
  EXPECT_EQ(validated->x_shape, (std::vector<int64_t>{3, 2, 2}));
}

TEST(ValidateInferRequestTest, DefaultOutputsFollowGradYPresence) {
  absl::StatusOr<ValidatedInferRequest> forward =
      ValidateInferRequest(RawRequest(false), SmallModel());
  ASSERT_TRUE(forward.ok());
  EXPECT_EQ(forward->outputs, std::vector<RequestedOutput>{{OutputTensor::kY}});
  EXPECT_FALSE(forward->NeedsBackward());

  absl::StatusOr<ValidatedInferRequest> backward =
      ValidateInferRequest(RawRequest(true), SmallModel());
  ASSERT_TRUE(backward.ok());
  EXPECT_EQ(backward->outputs,
            (std::vector<RequestedOutput>{{OutputTensor::kY},
                                          {OutputTensor::kGradX},
                                          {OutputTensor::kGradWeight},
                                          {OutputTensor::kGradBias}}));
  EXPECT_TRUE(backward->NeedsBackward());
}

TEST(ValidateInferRequestTest, OnlyYRequestedSkipsTheBackwardPass) {
  inference::ModelInferRequest request = RawRequest(true);
  request.add_outputs()->set_name("y");
  absl::StatusOr<ValidatedInferRequest> validated =
      ValidateInferRequest(request, SmallModel());
  ASSERT_TRUE(validated.ok());
  EXPECT_FALSE(validated->NeedsBackward());
}

TEST(ValidateInferRequestTest, EmptyVersionAndServedVersionBothSelect) {
  EXPECT_TRUE(CheckModelSelected("linear_relu", "", SmallModel()).ok());
  EXPECT_TRUE(CheckModelSelected("linear_relu", "1", SmallModel()).ok());
  EXPECT_EQ(CheckModelSelected("linear_relu", "2", SmallModel()).code(),
            absl::StatusCode::kNotFound);
}

TEST(ValidateInferRequestTest, TypedContentsAreViewedInPlace) {
  inference::ModelInferRequest request = RawRequest(false);
  request.clear_raw_input_contents();
  for (int i = 0; i < 12; ++i) {
    request.mutable_inputs(0)->mutable_contents()->add_fp32_contents(i);
  }
  absl::StatusOr<ValidatedInferRequest> validated =
      ValidateInferRequest(request, SmallModel());
  ASSERT_TRUE(validated.ok()) << validated.status();
  EXPECT_EQ(validated->x, request.inputs(0).contents().fp32_contents().data());
  EXPECT_EQ(static_cast<const float*>(validated->x)[11], 11.0f);
}

TEST(ValidateInferRequestTest, Bfloat16InputsAndPerOutputDatatypes) {
  inference::ModelInferRequest request = RawRequest(true);
  for (int i = 0; i < 2; ++i) {
    request.mutable_inputs(i)->set_datatype("BF16");
    // Half the bytes of FP32.
    request.mutable_raw_input_contents(i)->resize(
        request.raw_input_contents(i).size() / 2);
  }
  request.add_outputs()->set_name("y");
  auto* grad_x = request.add_outputs();
  grad_x->set_name("grad_x");
  (*grad_x->mutable_parameters())["datatype"].set_string_param("FP32");
  absl::StatusOr<ValidatedInferRequest> validated =
      ValidateInferRequest(request, SmallModel());
  ASSERT_TRUE(validated.ok()) << validated.status();
  EXPECT_EQ(validated->input_precision, Precision::kBFloat16);
  EXPECT_EQ(validated->outputs,
            (std::vector<RequestedOutput>{
                {OutputTensor::kY, Precision::kBFloat16},
                {OutputTensor::kGradX, Precision::kFloat32}}));
}

TEST(ValidateInferRequestTest, Bfloat16Refusals) {
  {  // FP32 byte count for a BF16 shape
    inference::ModelInferRequest request = RawRequest(false);
    request.mutable_inputs(0)->set_datatype("BF16");
    absl::Status status = ValidateInferRequest(request, SmallModel()).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("24 bytes"), absl::string_view::npos)
        << status;
  }
  {  // grad_y in another precision than x
    inference::ModelInferRequest request = RawRequest(true);
    request.mutable_inputs(0)->set_datatype("BF16");
    request.mutable_raw_input_contents(0)->resize(24);
    absl::Status status = ValidateInferRequest(request, SmallModel()).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("'grad_y': expected datatype BF16"),
              absl::string_view::npos)
        << status;
  }
  {  // an unknown output datatype
    inference::ModelInferRequest request = RawRequest(false);
    auto* y = request.add_outputs();
    y->set_name("y");
    (*y->mutable_parameters())["datatype"].set_string_param("FP16");
    absl::Status status = ValidateInferRequest(request, SmallModel()).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("FP16"), absl::string_view::npos) << status;
  }
}

TEST(ValidateInferRequestTest, OutputShapesFollowTheContract) {
  absl::StatusOr<ValidatedInferRequest> validated =
      ValidateInferRequest(RawRequest(true), SmallModel());
  ASSERT_TRUE(validated.ok());
  const ModelConfig model = SmallModel();
  EXPECT_EQ(OutputShape(*validated, OutputTensor::kY, model),
            (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(OutputShape(*validated, OutputTensor::kGradX, model),
            (std::vector<int64_t>{3, 2, 2}));
  EXPECT_EQ(OutputShape(*validated, OutputTensor::kGradWeight, model),
            (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(OutputShape(*validated, OutputTensor::kGradBias, model),
            (std::vector<int64_t>{2}));
}

// The response the service would build, by hand, against the size computed
// before it exists; and the stream's wrapper around it.
TEST(ValidateInferRequestTest, ResponseBytesAreExact) {
  inference::ModelInferRequest request = RawRequest(true);
  request.set_id(std::string(200, 'i'));  // a two-byte length
  request.add_outputs()->set_name("grad_x");
  auto* y = request.add_outputs();
  y->set_name("y");
  (*y->mutable_parameters())["datatype"].set_string_param("BF16");
  absl::StatusOr<ValidatedInferRequest> validated =
      ValidateInferRequest(request, SmallModel());
  ASSERT_TRUE(validated.ok()) << validated.status();

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
  EXPECT_EQ(validated->response_bytes,
            static_cast<int64_t>(response.ByteSizeLong()));

  inference::ModelStreamInferResponse wrapped;
  *wrapped.mutable_infer_response() = response;
  EXPECT_EQ(StreamResponseBytes(validated->response_bytes),
            static_cast<int64_t>(wrapped.ByteSizeLong()));
}

TEST(ValidateInferRequestTest, ResponseMustFitTheSendLimit) {
  absl::StatusOr<ValidatedInferRequest> validated =
      ValidateInferRequest(RawRequest(true), SmallModel());
  ASSERT_TRUE(validated.ok());
  const int64_t bytes = validated->response_bytes;
  EXPECT_TRUE(CheckResponseFits(*validated, bytes, /*streamed=*/false).ok());
  const absl::Status unary =
      CheckResponseFits(*validated, bytes - 1, /*streamed=*/false);
  EXPECT_EQ(unary.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unary.message().find(absl::StrCat(
                "would be ", bytes, " bytes, above the server's send limit of ",
                bytes - 1, " bytes")),
            absl::string_view::npos)
      << unary;
  // The stream's wrapper adds a tag and a length.
  EXPECT_FALSE(CheckResponseFits(*validated, bytes, /*streamed=*/true).ok());
  EXPECT_TRUE(CheckResponseFits(*validated, StreamResponseBytes(bytes),
                                /*streamed=*/true)
                  .ok());
}

}  // namespace
}  // namespace reluserve
