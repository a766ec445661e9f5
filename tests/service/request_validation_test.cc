#include "server/service/request_validation.h"

#include <gtest/gtest.h>

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
  EXPECT_EQ(forward->outputs, std::vector<OutputTensor>{OutputTensor::kY});
  EXPECT_FALSE(forward->NeedsBackward());

  absl::StatusOr<ValidatedInferRequest> backward =
      ValidateInferRequest(RawRequest(true), SmallModel());
  ASSERT_TRUE(backward.ok());
  EXPECT_EQ(backward->outputs,
            (std::vector<OutputTensor>{OutputTensor::kY, OutputTensor::kGradX,
                                       OutputTensor::kGradWeight,
                                       OutputTensor::kGradBias}));
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
  EXPECT_EQ(validated->x[11], 11.0f);
}

}  // namespace
}  // namespace reluserve
