#include "client/load_wire.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "client/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/byte_buffer_testing.h"

namespace reluserve {
namespace {

using ::testing::ElementsAre;

TEST(Bf16Test, BytesAreLittleEndianPairs) {
  const std::string bytes = Bf16Bytes({1.0f, -2.0f});
  ASSERT_EQ(bytes.size(), 4u);
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), 0x80);
  EXPECT_EQ(static_cast<uint8_t>(bytes[1]), 0x3f);
  EXPECT_EQ(static_cast<uint8_t>(bytes[2]), 0x00);
  EXPECT_EQ(static_cast<uint8_t>(bytes[3]), 0xc0);
}

// A Linear+ReLU model's tensors as its metadata lists them.
ModelTensors Model(int64_t in, int64_t out) {
  ModelTensors model;
  model.inputs = {{"x", {in}, false}, {"grad_y", {out}, true}};
  model.outputs = {"y", "grad_x", "grad_weight", "grad_bias"};
  return model;
}

TEST(MakeLoadRequestTest, ForwardFp32) {
  LoadRequestSpec spec;
  spec.batch = 3;
  spec.model = Model(5, 2);
  spec.seed = 11;
  absl::StatusOr<inference::ModelInferRequest> request = MakeLoadRequest(spec);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model_name(), "linear_relu");
  EXPECT_EQ(request->id(), "");
  ASSERT_EQ(request->inputs_size(), 1);
  EXPECT_EQ(request->inputs(0).name(), "x");
  EXPECT_EQ(request->inputs(0).datatype(), "FP32");
  EXPECT_THAT(request->inputs(0).shape(), ElementsAre(3, 5));
  // Only the first output, by name.
  ASSERT_EQ(request->outputs_size(), 1);
  EXPECT_EQ(request->outputs(0).name(), "y");
  const Tensor x = *RandomNormalTensor({3, 5}, 11);
  EXPECT_EQ(request->raw_input_contents(0),
            std::string(reinterpret_cast<const char*>(x.data.data()),
                        x.data.size() * sizeof(float)));
  EXPECT_EQ(ExpectedOutputs(spec), 1);
}

TEST(MakeLoadRequestTest, GradBf16) {
  LoadRequestSpec spec;
  spec.batch = 2;
  spec.model = Model(4, 3);
  spec.grad = true;
  spec.dtype = WireType::kBf16;
  spec.seed = 1;
  absl::StatusOr<inference::ModelInferRequest> request = MakeLoadRequest(spec);
  ASSERT_TRUE(request.ok()) << request.status();
  ASSERT_EQ(request->inputs_size(), 2);
  EXPECT_EQ(request->inputs(0).datatype(), "BF16");
  EXPECT_EQ(request->inputs(1).name(), "grad_y");
  EXPECT_EQ(request->inputs(1).datatype(), "BF16");
  EXPECT_THAT(request->inputs(1).shape(), ElementsAre(2, 3));
  EXPECT_EQ(request->raw_input_contents(0),
            Bf16Bytes(RandomNormalTensor({2, 4}, 1)->data));
  EXPECT_EQ(request->raw_input_contents(1),
            Bf16Bytes(RandomNormalTensor({2, 3}, 2)->data));
  ASSERT_EQ(request->outputs_size(), 4);
  EXPECT_EQ(request->outputs(0).name(), "y");
  EXPECT_EQ(request->outputs(1).name(), "grad_x");
  EXPECT_EQ(request->outputs(2).name(), "grad_weight");
  EXPECT_EQ(request->outputs(3).name(), "grad_bias");
  EXPECT_EQ(ExpectedOutputs(spec), 4);
}

TEST(MakeLoadRequestTest, RefusesEmptyShapes) {
  LoadRequestSpec spec;
  spec.batch = 0;
  spec.model = Model(4, 3);
  EXPECT_FALSE(MakeLoadRequest(spec).ok());
  spec.batch = 1;
  spec.model.inputs.clear();
  EXPECT_FALSE(MakeLoadRequest(spec).ok());
}

using testing::Flatten;

TEST(RequestWithIdTest, AppendedIdFieldSetsTheId) {
  LoadRequestSpec spec;
  spec.model = Model(8, 2);
  inference::ModelInferRequest request = *MakeLoadRequest(spec);
  request.set_id("stale");  // the appended field must win
  const grpc::Slice body(request.SerializeAsString());
  for (uint64_t id : {uint64_t{0}, uint64_t{7}, uint64_t{123456789012345}}) {
    inference::ModelInferRequest parsed;
    ASSERT_TRUE(parsed.ParseFromString(Flatten(RequestWithId(body, id))));
    EXPECT_EQ(parsed.id(), std::to_string(id));
    EXPECT_EQ(parsed.raw_input_contents(0), request.raw_input_contents(0));
    EXPECT_EQ(parsed.inputs(0).name(), "x");
  }
}

// `bytes` as a ByteBuffer of small slices, as gRPC may deliver it.
grpc::ByteBuffer Chopped(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    slices.emplace_back(bytes.substr(at, piece));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

inference::ModelInferResponse Response(int outputs, const std::string& id) {
  inference::ModelInferResponse response;
  response.set_model_name("linear_relu");
  response.set_model_version("1");
  response.set_id(id);
  for (int i = 0; i < outputs; ++i) {
    auto* output = response.add_outputs();
    output->set_name("out" + std::to_string(i));
    output->set_datatype("FP32");
    output->add_shape(100);
    response.add_raw_output_contents(std::string(400 + i, '\x01'));
  }
  (*response.mutable_parameters())["p"].set_int64_param(3);
  return response;
}

TEST(ScanResponseTest, InferResponse) {
  const std::string bytes = Response(4, "42").SerializeAsString();
  for (size_t piece : {size_t{7}, size_t{64}, bytes.size()}) {
    grpc::ByteBuffer buffer = Chopped(bytes, piece);
    const ScannedResponse scanned = ScanResponse(buffer, /*stream=*/false);
    EXPECT_TRUE(scanned.parsed);
    EXPECT_EQ(scanned.id, "42");
    EXPECT_EQ(scanned.outputs, 4);
    EXPECT_EQ(scanned.raw_outputs, 4);
    EXPECT_EQ(scanned.raw_bytes, 400 + 401 + 402 + 403);
    EXPECT_EQ(scanned.error_message, "");
  }
}

TEST(ScanResponseTest, StreamResponse) {
  inference::ModelStreamInferResponse ok;
  *ok.mutable_infer_response() = Response(1, "9");
  grpc::ByteBuffer buffer = Chopped(ok.SerializeAsString(), 5);
  ScannedResponse scanned = ScanResponse(buffer, /*stream=*/true);
  EXPECT_TRUE(scanned.parsed);
  EXPECT_EQ(scanned.id, "9");
  EXPECT_EQ(scanned.outputs, 1);
  EXPECT_EQ(scanned.raw_outputs, 1);

  inference::ModelStreamInferResponse failed;
  failed.set_error_message("INVALID_ARGUMENT: input 'x': bad");
  buffer = Chopped(failed.SerializeAsString(), 1000);
  scanned = ScanResponse(buffer, /*stream=*/true);
  EXPECT_TRUE(scanned.parsed);
  EXPECT_EQ(scanned.error_message, "INVALID_ARGUMENT: input 'x': bad");
  EXPECT_EQ(scanned.outputs, 0);
}

TEST(ScanResponseTest, TruncatedIsNotParsed) {
  const std::string bytes = Response(2, "1").SerializeAsString();
  grpc::ByteBuffer buffer = Chopped(bytes.substr(0, bytes.size() - 10), 100);
  EXPECT_FALSE(ScanResponse(buffer, /*stream=*/false).parsed);
}

TEST(ScanResponseTest, EmptyIsAnEmptyMessage) {
  grpc::ByteBuffer buffer;
  const ScannedResponse scanned = ScanResponse(buffer, /*stream=*/false);
  EXPECT_TRUE(scanned.parsed);
  EXPECT_EQ(scanned.outputs, 0);
}

TEST(StreamErrorCodeTest, LeadingCodeName) {
  EXPECT_EQ(StreamErrorCode("INVALID_ARGUMENT: input 'x'"), "INVALID_ARGUMENT");
  EXPECT_EQ(StreamErrorCode("UNAVAILABLE: queue full"), "UNAVAILABLE");
  EXPECT_EQ(StreamErrorCode("in ensemble: failed"), "UNKNOWN");
  EXPECT_EQ(StreamErrorCode(""), "UNKNOWN");
}

}  // namespace
}  // namespace reluserve
