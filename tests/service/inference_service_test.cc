// The service over real gRPC: a Server on 127.0.0.1:<free port> in this
// process, called through the generated stub over a real socket. Health,
// metadata, inference, request errors, BF16 and statistics; the limits and
// streams are in inference_limits_test.cc, shutdown and draining in
// inference_draining_test.cc.
#include "server/service/inference_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "server/service/server.h"
#include "tests/support/naive_reference.h"
#include "tests/support/service_testing.h"

namespace reluserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using ::reluserve::testing::AddInput;
using ::reluserve::testing::Bf16Bytes;
using ::reluserve::testing::Bf16Floats;
using ::reluserve::testing::Bytes;
using ::reluserve::testing::Floats;
using ::reluserve::testing::kIn;
using ::reluserve::testing::kOut;
using ::reluserve::testing::RandomValues;
using ::reluserve::testing::RelativeError;
using ::reluserve::testing::RoundedToBf16;
using ::reluserve::testing::SchedulingName;
using ::reluserve::testing::Schedulings;
using ::reluserve::testing::ServiceTest;

TEST_P(ServiceTest, HealthAndReadiness) {
  {
    grpc::ClientContext context;
    inference::ServerLiveResponse response;
    ASSERT_TRUE(stub_->ServerLive(&context, {}, &response).ok());
    EXPECT_TRUE(response.live());
  }
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse response;
    ASSERT_TRUE(stub_->ServerReady(&context, {}, &response).ok());
    EXPECT_TRUE(response.ready());
  }
  for (const auto& [name, version, ready] :
       std::vector<std::tuple<std::string, std::string, bool>>{
           {"linear_relu", "", true},
           {"linear_relu", "1", true},
           {"linear_relu", "2", false},
           {"resnet50", "", false}}) {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    ASSERT_TRUE(stub_->ModelReady(&context, request, &response).ok());
    EXPECT_EQ(response.ready(), ready) << name << " v" << version;
  }
}

TEST_P(ServiceTest, ServerMetadataNamesTheServer) {
  grpc::ClientContext context;
  inference::ServerMetadataResponse response;
  ASSERT_TRUE(stub_->ServerMetadata(&context, {}, &response).ok());
  EXPECT_EQ(response.name(), "reluserve");
  EXPECT_FALSE(response.version().empty());
  EXPECT_EQ(
      std::vector<std::string>(response.extensions().begin(),
                               response.extensions().end()),
      (std::vector<std::string>{"statistics", "model_configuration",
                                "model_repository", "binary_tensor_data"}));
}

TEST_P(ServiceTest, ModelMetadataDescribesTheContract) {
  grpc::ClientContext context;
  inference::ModelMetadataRequest request;
  request.set_name("linear_relu");
  inference::ModelMetadataResponse response;
  ASSERT_TRUE(stub_->ModelMetadata(&context, request, &response).ok());
  EXPECT_EQ(response.name(), "linear_relu");
  ASSERT_EQ(response.versions_size(), 1);
  EXPECT_EQ(response.versions(0), "1");
  auto describe = [](const auto& tensors) {
    std::vector<std::string> described;
    for (const auto& t : tensors) {
      std::string shape;
      for (int64_t dim : t.shape()) shape += std::to_string(dim) + ",";
      described.push_back(t.name() + ":" + t.datatype() + ":" + shape);
    }
    return described;
  };
  EXPECT_EQ(describe(response.inputs()),
            (std::vector<std::string>{"x:FP32:-1,37,", "grad_y:FP32:-1,13,"}));
  EXPECT_EQ(describe(response.outputs()),
            (std::vector<std::string>{"y:FP32:-1,13,", "grad_x:FP32:-1,37,",
                                      "grad_weight:FP32:13,37,",
                                      "grad_bias:FP32:13,"}));

  grpc::ClientContext unknown_context;
  request.set_name("resnet50");
  const grpc::Status unknown =
      stub_->ModelMetadata(&unknown_context, request, &response);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(unknown.error_message().find("resnet50"), std::string::npos);
  EXPECT_NE(unknown.error_message().find("linear_relu"), std::string::npos);
}

TEST_P(ServiceTest, ForwardMatchesReferenceAndEchoesIdentity) {
  ModelInferRequest request = Request(5, false);
  request.set_id("request-42");
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  EXPECT_EQ(response.id(), "request-42");
  EXPECT_EQ(response.model_name(), "linear_relu");
  EXPECT_EQ(response.model_version(), "1");
  ASSERT_EQ(response.outputs_size(), 1);
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "y");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(response.outputs(0).shape().begin(),
                                 response.outputs(0).shape().end()),
            (std::vector<int64_t>{5, kOut}));
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 5, x_.data(), nullptr);
  EXPECT_LE(RelativeError(Floats(response.raw_output_contents(0)), expected.y),
            1e-5);
}

TEST_P(ServiceTest, ForwardBackwardReturnsAllFourInContractOrder) {
  ModelInferResponse response;
  ASSERT_TRUE(Infer(Request(7, true), &response).ok());
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 7, x_.data(), grad_y_.data());
  const std::vector<std::pair<std::string, const std::vector<double>*>> want = {
      {"y", &expected.y},
      {"grad_x", &expected.grad_x},
      {"grad_weight", &expected.grad_weight},
      {"grad_bias", &expected.grad_bias}};
  ASSERT_EQ(response.outputs_size(), 4);
  ASSERT_EQ(response.raw_output_contents_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(response.outputs(i).name(), want[i].first);
    const std::vector<float> got = Floats(response.raw_output_contents(i));
    ASSERT_EQ(got.size(), want[i].second->size()) << want[i].first;
    EXPECT_LE(RelativeError(got, *want[i].second), 1e-5) << want[i].first;
  }
}

TEST_P(ServiceTest, RequestedOutputsComeExactlyAndInOrder) {
  ModelInferRequest request = Request(3, true);
  request.add_outputs()->set_name("grad_bias");
  request.add_outputs()->set_name("y");
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "grad_bias");
  EXPECT_EQ(response.outputs(1).name(), "y");
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 3, x_.data(), grad_y_.data());
  EXPECT_LE(RelativeError(Floats(response.raw_output_contents(0)),
                          expected.grad_bias),
            1e-5);
  EXPECT_LE(RelativeError(Floats(response.raw_output_contents(1)), expected.y),
            1e-5);

  // grad_y present but only y asked for: only y comes back.
  ModelInferRequest only_y = Request(3, true);
  only_y.add_outputs()->set_name("y");
  ASSERT_TRUE(Infer(only_y, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "y");
}

TEST_P(ServiceTest, TypedFp32ContentsWork) {
  ModelInferRequest request;
  request.set_model_name("linear_relu");
  const std::vector<float> x = RandomValues(2 * kIn, 7);
  const std::vector<float> grad_y = RandomValues(2 * kOut, 8);
  for (const auto& [name, values, width] :
       {std::tuple{"x", &x, kIn}, std::tuple{"grad_y", &grad_y, kOut}}) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype("FP32");
    input->add_shape(2);
    input->add_shape(width);
    for (float v : *values) input->mutable_contents()->add_fp32_contents(v);
  }
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 2, x.data(), grad_y.data());
  ASSERT_EQ(response.raw_output_contents_size(), 4);
  EXPECT_LE(
      RelativeError(Floats(response.raw_output_contents(1)), expected.grad_x),
      1e-5);
}

TEST_P(ServiceTest, ImageShapedBatchKeepsItsShapeInGradX) {
  StartServer(3072, 100);
  ModelInferRequest request;
  request.set_model_name("linear_relu");
  const std::vector<float> x = RandomValues(4 * 3072, 9);
  const std::vector<float> grad_y = RandomValues(4 * 100, 10);
  AddInput(request, "x", {4, 3, 32, 32}, x);
  AddInput(request, "grad_y", {4, 100}, grad_y);
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 4);
  EXPECT_EQ(std::vector<int64_t>(response.outputs(1).shape().begin(),
                                 response.outputs(1).shape().end()),
            (std::vector<int64_t>{4, 3, 32, 32}));
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 4, x.data(), grad_y.data());
  EXPECT_LE(
      RelativeError(Floats(response.raw_output_contents(1)), expected.grad_x),
      1e-5);
}

TEST_P(ServiceTest, RequestAboveGrpcDefaultFourMebibytesSucceeds) {
  StartServer(3072, 100);
  // 400 × 3072 × 4 bytes = 4.9 MB of x, past gRPC's 4 MiB default.
  ModelInferResponse response;
  ASSERT_TRUE(Infer(Request(400, true), &response).ok());
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 400, x_.data(), grad_y_.data());
  EXPECT_LE(RelativeError(Floats(response.raw_output_contents(0)), expected.y),
            1e-5);
  EXPECT_LE(RelativeError(Floats(response.raw_output_contents(2)),
                          expected.grad_weight),
            1e-5);
}

struct BadRequestCase {
  std::string name;
  std::function<void(ModelInferRequest&)> spoil;
  grpc::StatusCode code;
  std::vector<std::string> message_mentions;
};

// Every row of API.md's status table that a request alone can cause.
TEST_P(ServiceTest, MalformedRequestsGetTheContractStatus) {
  const std::vector<BadRequestCase> cases = {
      {"unknown model",
       [](auto& r) { r.set_model_name("resnet50"); },
       grpc::StatusCode::NOT_FOUND,
       {"resnet50", "linear_relu"}},
      {"unknown version",
       [](auto& r) { r.set_model_version("3"); },
       grpc::StatusCode::NOT_FOUND,
       {"'3'", "version 1"}},
      {"missing x",
       [](auto& r) {
         r.mutable_inputs()->DeleteSubrange(0, 1);
         r.mutable_raw_input_contents()->DeleteSubrange(0, 1);
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"missing input 'x'", "[N, 37]"}},
      {"unknown input",
       [](auto& r) { r.mutable_inputs(1)->set_name("z"); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'z'", "grad_y"}},
      {"unknown output",
       [](auto& r) { r.add_outputs()->set_name("logits"); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'logits'", "grad_weight"}},
      {"wrong datatype",
       [](auto& r) { r.mutable_inputs(0)->set_datatype("FP16"); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "FP32", "FP16"}},
      {"wrong rank",
       [](auto& r) {
         r.mutable_inputs(0)->clear_shape();
         r.mutable_inputs(0)->add_shape(37);
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "[N, 37]", "[37]"}},
      {"wrong features",
       [](auto& r) { r.mutable_inputs(0)->set_shape(1, 36); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "37", "[2, 36]"}},
      {"wrong grad_y shape",
       [](auto& r) { r.mutable_inputs(1)->set_shape(1, 12); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'grad_y'", "[2, 13]", "[2, 12]"}},
      {"byte count",
       [](auto& r) { r.mutable_raw_input_contents(0)->pop_back(); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "296 bytes", "295"}},
      {"raw and typed mixed",
       [](auto& r) {
         r.mutable_inputs(1)->mutable_contents()->add_fp32_contents(1.0f);
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'grad_y'", "not both"}},
      {"raw count",
       [](auto& r) { r.mutable_raw_input_contents()->RemoveLast(); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"one raw_input_contents", "(2)", "1"}},
      {"N = 0",
       [](auto& r) {
         r.mutable_inputs(0)->set_shape(0, 0);
         r.mutable_inputs()->DeleteSubrange(1, 1);
         r.mutable_raw_input_contents()->DeleteSubrange(1, 1);
         r.mutable_raw_input_contents(0)->clear();
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "N >= 1", "[0, 37]"}},
      {"negative dimension",
       [](auto& r) { r.mutable_inputs(0)->set_shape(0, -2); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "non-negative", "[-2, 37]"}},
      {"shape overflow",
       [](auto& r) {
         r.mutable_inputs(0)->set_shape(0, int64_t{1} << 40);
         r.mutable_inputs(0)->add_shape(int64_t{1} << 40);
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "overflows"}},
      {"gradient without grad_y",
       [](auto& r) {
         r.mutable_inputs()->DeleteSubrange(1, 1);
         r.mutable_raw_input_contents()->DeleteSubrange(1, 1);
         r.add_outputs()->set_name("grad_x");
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'grad_x'", "'grad_y'"}},
      {"typed field of another datatype",
       [](auto& r) {
         r.clear_raw_input_contents();
         r.mutable_inputs()->DeleteSubrange(1, 1);
         for (int i = 0; i < 2 * 37; ++i) {
           r.mutable_inputs(0)->mutable_contents()->add_int_contents(1);
         }
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "fp32_contents", "int_contents"}},
      {"duplicate input",
       [](auto& r) { r.mutable_inputs(1)->set_name("x"); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "twice"}},
      {"duplicate output",
       [](auto& r) {
         r.add_outputs()->set_name("y");
         r.add_outputs()->set_name("y");
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'y'", "twice"}},
      {"batch above maximum",
       [](auto& r) {
         // A real 5000-row request (740 KB), not just a shape.
         r.mutable_inputs(0)->set_shape(0, 5000);
         *r.mutable_raw_input_contents(0) = Bytes(RandomValues(5000 * 37, 3));
         r.mutable_inputs(1)->set_shape(0, 5000);
         *r.mutable_raw_input_contents(1) = Bytes(RandomValues(5000 * 13, 4));
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"5000", "maximum", "4096"}},
  };
  for (const BadRequestCase& bad : cases) {
    ModelInferRequest request = Request(2, true);
    bad.spoil(request);
    ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    EXPECT_EQ(status.error_code(), bad.code)
        << bad.name << ": " << status.error_message();
    for (const std::string& mention : bad.message_mentions) {
      EXPECT_NE(status.error_message().find(mention), std::string::npos)
          << bad.name << ": '" << status.error_message() << "' lacks '"
          << mention << "'";
    }
    EXPECT_EQ(response.outputs_size(), 0) << bad.name;
    ExpectServerStillServes();
  }
}

TEST_P(ServiceTest, SecondServerOnABusyPortFailsClearly) {
  Server::Options options;
  options.port = server_->port();
  absl::StatusOr<std::unique_ptr<Server>> second =
      Server::Start(options, testing::SingleLayerModel(weights_));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(server_->address()),
            std::string::npos)
      << second.status();
  ExpectServerStillServes();
}

// BF16 on the wire: inputs in half the bytes, outputs in BF16 by default or
// in FP32 when an output's "datatype" parameter asks.
TEST_P(ServiceTest, Bfloat16TensorsOnTheWire) {
  constexpr int64_t kRows = 5;
  const std::vector<float> x = RandomValues(kRows * kIn, 70);
  const std::vector<float> grad_y = RandomValues(kRows * kOut, 71);
  ModelInferRequest request;
  request.set_model_name("linear_relu");
  for (const auto& [name, values, width] :
       {std::tuple{"x", &x, kIn}, std::tuple{"grad_y", &grad_y, kOut}}) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype("BF16");
    input->add_shape(kRows);
    input->add_shape(width);
    request.add_raw_input_contents(Bf16Bytes(*values));
  }
  for (const char* name : {"y", "grad_x", "grad_weight", "grad_bias"}) {
    request.add_outputs()->set_name(name);
  }
  (*request.mutable_outputs(1)->mutable_parameters())["datatype"]
      .set_string_param("FP32");
  ModelInferResponse response;
  const grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  // What the bf16 kernels compute from: the inputs and weights rounded.
  LinearWeights rounded = weights_;
  rounded.weight = RoundedToBf16(weights_.weight);
  const std::vector<float> x_rounded = RoundedToBf16(x);
  const std::vector<float> grad_y_rounded = RoundedToBf16(grad_y);
  const ReferenceResult expected =
      NaiveLinearRelu(rounded, kRows, x_rounded.data(), grad_y_rounded.data());
  ASSERT_EQ(response.outputs_size(), 4);
  EXPECT_EQ(response.outputs(0).datatype(), "BF16");
  EXPECT_EQ(response.outputs(1).datatype(), "FP32");
  EXPECT_EQ(response.outputs(2).datatype(), "BF16");
  EXPECT_EQ(response.raw_output_contents(0).size(), kRows * kOut * 2);
  EXPECT_EQ(response.raw_output_contents(1).size(), kRows * kIn * 4);
  // BF16 outputs carry bfloat16's own rounding (8-bit mantissa, 2^-9).
  EXPECT_LE(
      RelativeError(Bf16Floats(response.raw_output_contents(0)), expected.y),
      4e-3);
  EXPECT_LE(
      RelativeError(Floats(response.raw_output_contents(1)), expected.grad_x),
      1e-5);
  EXPECT_LE(RelativeError(Bf16Floats(response.raw_output_contents(2)),
                          expected.grad_weight),
            4e-3);
  EXPECT_LE(RelativeError(Bf16Floats(response.raw_output_contents(3)),
                          expected.grad_bias),
            4e-3);
}

TEST_P(ServiceTest, StatisticsCountRequestsRowsAndPhases) {
  for (int64_t rows : {2, 3, 4}) {
    ModelInferResponse response;
    ASSERT_TRUE(Infer(Request(rows, false), &response).ok());
  }
  ModelInferRequest bad = Request(1, false);
  bad.mutable_inputs(0)->set_datatype("INT8");
  ModelInferResponse ignored;
  EXPECT_FALSE(Infer(bad, &ignored).ok());

  grpc::ClientContext context;
  inference::ModelStatisticsRequest request;
  request.set_name("linear_relu");
  inference::ModelStatisticsResponse response;
  ASSERT_TRUE(stub_->ModelStatistics(&context, request, &response).ok());
  ASSERT_EQ(response.model_stats_size(), 1);
  const inference::ModelStatistics& statistics = response.model_stats(0);
  EXPECT_EQ(statistics.name(), "linear_relu");
  EXPECT_EQ(statistics.version(), "1");
  EXPECT_EQ(statistics.inference_count(), 9u);
  EXPECT_GT(statistics.last_inference(), 0u);
  const inference::InferStatistics& phases = statistics.inference_stats();
  EXPECT_EQ(phases.success().count(), 3u);
  EXPECT_EQ(phases.fail().count(), 1u);
  for (const auto* phase :
       {&phases.queue(), &phases.compute_input(), &phases.compute_infer(),
        &phases.compute_output()}) {
    EXPECT_EQ(phase->count(), 3u);
  }
  EXPECT_GT(phases.compute_infer().ns(), 0u);
  EXPECT_GE(phases.success().ns(), phases.compute_infer().ns());
  // One call at a time: nothing to merge, one execution each.
  EXPECT_EQ(statistics.execution_count(), 3u);
  std::vector<uint64_t> sizes;
  for (const auto& batch : statistics.batch_stats()) {
    sizes.push_back(batch.batch_size());
    EXPECT_EQ(batch.compute_infer().count(), 1u);
  }
  EXPECT_EQ(sizes, (std::vector<uint64_t>{2, 3, 4}));

  grpc::ClientContext unknown_context;
  request.set_name("resnet50");
  EXPECT_EQ(
      stub_->ModelStatistics(&unknown_context, request, &response).error_code(),
      grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext all_context;
  request.set_name("");
  response.Clear();
  ASSERT_TRUE(stub_->ModelStatistics(&all_context, request, &response).ok());
  EXPECT_EQ(response.model_stats_size(), 1);
}

INSTANTIATE_TEST_SUITE_P(AllSchedulings, ServiceTest, Schedulings(),
                         SchedulingName);

}  // namespace
}  // namespace reluserve
