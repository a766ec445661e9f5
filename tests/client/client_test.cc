// The Client against an in-process fake GRPCInferenceService on 127.0.0.1:
// request encoding, response decoding, status mapping, deadlines and
// message-size limits, without the real server.

#include "client/client.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "grpc_service.grpc.pb.h"
#include "grpcpp/server.h"
#include "gtest/gtest.h"
#include "tests/support/loopback_server.h"
#include "tests/support/port_testing.h"
#include "tests/support/tensor_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::FloatBytes;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Answers like ReluServe in shape only: each requested output (default: y) is
// relu(x) with x's shape. Special request ids trigger errors and delays.
class FakeService final : public inference::GRPCInferenceService::Service {
 public:
  bool model_ready = true;
  bool model_known = true;

  inference::ModelInferRequest last_request() {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_request_;
  }

  grpc::Status ServerLive(grpc::ServerContext*,
                          const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* response) override {
    response->set_live(true);
    return grpc::Status::OK;
  }

  grpc::Status ServerReady(grpc::ServerContext*,
                           const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* response) override {
    response->set_ready(true);
    return grpc::Status::OK;
  }

  grpc::Status ModelReady(grpc::ServerContext*,
                          const inference::ModelReadyRequest* request,
                          inference::ModelReadyResponse* response) override {
    if (!model_known) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "unknown model '" + request->name() + "'");
    }
    response->set_ready(model_ready);
    return grpc::Status::OK;
  }

  grpc::Status ServerMetadata(
      grpc::ServerContext*, const inference::ServerMetadataRequest*,
      inference::ServerMetadataResponse* response) override {
    response->set_name("fake");
    response->set_version("9.9");
    response->add_extensions("health");
    return grpc::Status::OK;
  }

  grpc::Status ModelMetadata(
      grpc::ServerContext*, const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override {
    if (request->name() != "linear_relu") {
      return grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          "model '" + request->name() + "' not found; serving 'linear_relu'");
    }
    response->set_name(request->name());
    response->add_versions("1");
    auto* x = response->add_inputs();
    x->set_name("x");
    x->set_datatype("FP32");
    x->add_shape(-1);
    x->add_shape(4);
    return grpc::Status::OK;
  }

  grpc::Status ModelInfer(grpc::ServerContext*,
                          const inference::ModelInferRequest* request,
                          inference::ModelInferResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last_request_ = *request;
    }
    if (request->id() == "fail") {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "input 'x': expected FP32, got INT32");
    }
    if (request->id() == "slow") {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    std::vector<float> y(request->raw_input_contents(0).size() / 4);
    std::memcpy(y.data(), request->raw_input_contents(0).data(),
                y.size() * sizeof(float));
    for (float& value : y) value = std::max(value, 0.0f);
    std::vector<std::string> names;
    for (const auto& output : request->outputs())
      names.push_back(output.name());
    if (names.empty()) names.push_back("y");
    response->set_model_name(request->model_name());
    response->set_model_version("1");
    response->set_id(request->id());
    for (const std::string& name : names) {
      auto* output = response->add_outputs();
      output->set_name(name);
      output->set_datatype("FP32");
      *output->mutable_shape() = request->inputs(0).shape();
      response->add_raw_output_contents(FloatBytes(y));
    }
    return grpc::Status::OK;
  }

 private:
  std::mutex mutex_;
  inference::ModelInferRequest last_request_;
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = testing::StartOnLoopback(&service_, &port_);
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  void TearDown() override { server_->Shutdown(); }

  ClientOptions Options() const {
    ClientOptions options;
    options.target = "127.0.0.1:" + std::to_string(port_);
    options.deadline = std::chrono::seconds(10);
    return options;
  }

  FakeService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(ClientTest, HealthAllTrue) {
  absl::StatusOr<HealthStatus> health = Client(Options()).Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_TRUE(health->live);
  EXPECT_TRUE(health->ready);
  EXPECT_TRUE(health->model_ready);
  EXPECT_EQ(health->detail, "");
}

TEST_F(ClientTest, HealthModelNotReady) {
  service_.model_ready = false;
  absl::StatusOr<HealthStatus> health = Client(Options()).Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_TRUE(health->ready);
  EXPECT_FALSE(health->model_ready);
}

TEST_F(ClientTest, HealthUnknownModelReadsAsNotReadyWithTheReason) {
  service_.model_known = false;
  ClientOptions options = Options();
  options.model_name = "nope";
  absl::StatusOr<HealthStatus> health = Client(options).Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_TRUE(health->live);
  EXPECT_FALSE(health->model_ready);
  EXPECT_THAT(health->detail, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(health->detail, HasSubstr("unknown model 'nope'"));
}

TEST_F(ClientTest, HealthOfAnUnreachableServerIsUnavailable) {
  const testing::HeldPort held;
  ASSERT_GT(held.port(), 0);
  ClientOptions options = Options();
  options.target = held.target();
  absl::StatusOr<HealthStatus> health = Client(options).Health();
  EXPECT_EQ(health.status().code(), absl::StatusCode::kUnavailable)
      << health.status();
  EXPECT_FALSE(health.status().message().empty());

  const Client client(options);
  const absl::Status connected =
      client.WaitForConnection(std::chrono::milliseconds(200));
  EXPECT_EQ(connected.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(connected.message(), HasSubstr("cannot reach " + options.target +
                                             ": no connection within 200 ms"));
  EXPECT_THAT(connected.message(), HasSubstr("--connect-timeout-ms"));
}

TEST_F(ClientTest, WaitForConnectionSucceedsAgainstALiveServer) {
  EXPECT_TRUE(Client(Options())
                  .WaitForConnection(std::chrono::milliseconds(5000))
                  .ok());
}

TEST_F(ClientTest, Metadata) {
  Client client(Options());
  absl::StatusOr<inference::ServerMetadataResponse> server =
      client.ServerMetadata();
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(server->name(), "fake");
  EXPECT_THAT(server->extensions(), ElementsAre("health"));
  absl::StatusOr<inference::ModelMetadataResponse> model =
      client.ModelMetadata();
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(model->inputs_size(), 1);
  EXPECT_THAT(model->inputs(0).shape(), ElementsAre(-1, 4));
}

TEST_F(ClientTest, ServerErrorsKeepCodeAndMessage) {
  ClientOptions options = Options();
  options.model_name = "other";
  absl::StatusOr<inference::ModelMetadataResponse> model =
      Client(options).ModelMetadata();
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(model.status().message(),
            "model 'other' not found; serving 'linear_relu'");

  InferInputs inputs;
  inputs.tensors = {{"x", Tensor{{1, 4}, {1, 2, 3, 4}}}};
  inputs.id = "fail";
  absl::StatusOr<InferResult> result = Client(Options()).Infer(inputs);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(), "input 'x': expected FP32, got INT32");
}

TEST_F(ClientTest, MakeRequestEncodesEverything) {
  ClientOptions options = Options();
  options.model_version = "1";
  Client client(options);
  InferInputs inputs;
  inputs.tensors = {{"x", Tensor{{2, 2}, {1, -2, 3, -4}}}};
  inputs.tensors.push_back({"grad_y", Tensor{{2, 1}, {0.5f, 0.25f}}});
  inputs.output_names = {"grad_bias", "y"};
  inputs.id = "req-7";
  absl::StatusOr<inference::ModelInferRequest> request =
      client.MakeRequest(inputs);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model_name(), "linear_relu");
  EXPECT_EQ(request->model_version(), "1");
  EXPECT_EQ(request->id(), "req-7");
  ASSERT_EQ(request->inputs_size(), 2);
  EXPECT_EQ(request->inputs(0).name(), "x");
  EXPECT_EQ(request->inputs(0).datatype(), "FP32");
  EXPECT_THAT(request->inputs(0).shape(), ElementsAre(2, 2));
  EXPECT_FALSE(request->inputs(0).has_contents());
  EXPECT_EQ(request->inputs(1).name(), "grad_y");
  EXPECT_THAT(request->inputs(1).shape(), ElementsAre(2, 1));
  ASSERT_EQ(request->raw_input_contents_size(), 2);
  EXPECT_EQ(request->raw_input_contents(0), FloatBytes({1, -2, 3, -4}));
  EXPECT_EQ(request->raw_input_contents(1), FloatBytes({0.5f, 0.25f}));
  ASSERT_EQ(request->outputs_size(), 2);
  EXPECT_EQ(request->outputs(0).name(), "grad_bias");
  EXPECT_EQ(request->outputs(1).name(), "y");
}

TEST_F(ClientTest, MakeRequestRefusesDataThatDoesNotMatchTheShape) {
  Client client(Options());
  InferInputs inputs;
  inputs.tensors = {{"x", Tensor{{2, 2}, {1, 2, 3}}}};
  absl::StatusOr<inference::ModelInferRequest> request =
      client.MakeRequest(inputs);
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(request.status().message(), HasSubstr("x"));
  inputs.tensors = {{"x", Tensor{{1, 3}, {1, 2, 3}}}};
  inputs.tensors.push_back({"grad_y", Tensor{{1, 2}, {}}});
  request = client.MakeRequest(inputs);
  EXPECT_THAT(request.status().message(), HasSubstr("grad_y"));
}

TEST_F(ClientTest, InferDecodesOutputsInResponseOrder) {
  Client client(Options());
  InferInputs inputs;
  inputs.tensors = {{"x", Tensor{{2, 2}, {1, -2, 3, -4}}}};
  inputs.output_names = {"b", "a"};
  inputs.id = "abc";
  absl::StatusOr<InferResult> result = client.Infer(inputs);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->id, "abc");
  EXPECT_EQ(result->model_name, "linear_relu");
  EXPECT_EQ(result->model_version, "1");
  ASSERT_EQ(result->outputs.size(), 2u);
  EXPECT_EQ(result->outputs[0].name, "b");
  EXPECT_EQ(result->outputs[1].name, "a");
  const Tensor* a = result->Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_THAT(a->shape, ElementsAre(2, 2));
  EXPECT_THAT(a->data, ElementsAre(1, 0, 3, 0));
  EXPECT_EQ(result->Find("c"), nullptr);
  EXPECT_GT(result->round_trip.count(), 0);
}

TEST_F(ClientTest, MessagesAboveFourMiBPassBothWays) {
  // 400 x 3072 FP32 = 4.9 MB each way, above gRPC's 4 MiB default.
  InferInputs inputs;
  inputs.tensors = {
      {"x", Tensor{{400, 3072}, std::vector<float>(400 * 3072, 1.25f)}}};
  absl::StatusOr<InferResult> result = Client(Options()).Infer(inputs);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->outputs.size(), 1u);
  EXPECT_EQ(result->outputs[0].tensor.data.size(), 400u * 3072u);
  EXPECT_EQ(result->outputs[0].tensor.data.back(), 1.25f);
}

TEST_F(ClientTest, DeadlineExceeded) {
  ClientOptions options = Options();
  options.deadline = std::chrono::milliseconds(50);
  InferInputs inputs;
  inputs.tensors = {{"x", Tensor{{1, 1}, {1}}}};
  inputs.id = "slow";
  absl::StatusOr<InferResult> result = Client(options).Infer(inputs);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(ClientTest, OneClientSharedByThreads) {
  const Client client(Options());
  std::vector<std::thread> threads;
  std::vector<int> failures(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&client, &failures, t] {
      for (int i = 0; i < 20; ++i) {
        InferInputs inputs;
        inputs.tensors = {
            {"x", Tensor{{1, 2}, {static_cast<float>(t), -1.0f}}}};
        inputs.id = std::to_string(t);
        absl::StatusOr<InferResult> result = client.Infer(inputs);
        if (!result.ok() || result->id != inputs.id ||
            result->outputs[0].tensor.data[0] != static_cast<float>(t)) {
          ++failures[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(failures, ::testing::Each(0));
}

inference::ModelInferResponse OneOutput(std::vector<int64_t> shape,
                                        const std::string& raw) {
  inference::ModelInferResponse response;
  auto* output = response.add_outputs();
  output->set_name("y");
  output->set_datatype("FP32");
  output->mutable_shape()->Add(shape.begin(), shape.end());
  response.add_raw_output_contents(raw);
  return response;
}

TEST(DecodeResponseTest, RefusesMalformedResponses) {
  EXPECT_EQ(DecodeResponse(OneOutput({2}, FloatBytes({1}))).status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(DecodeResponse(OneOutput({-1}, "")).status().code(),
            absl::StatusCode::kInternal);
  EXPECT_EQ(DecodeResponse(OneOutput({1}, "abc")).status().code(),
            absl::StatusCode::kInternal);

  inference::ModelInferResponse fp64 = OneOutput({1}, FloatBytes({1}));
  fp64.mutable_outputs(0)->set_datatype("FP64");
  EXPECT_THAT(DecodeResponse(fp64).status().message(), HasSubstr("FP64"));

  inference::ModelInferResponse extra_raw = OneOutput({1}, FloatBytes({1}));
  extra_raw.add_raw_output_contents(FloatBytes({2}));
  EXPECT_EQ(DecodeResponse(extra_raw).status().code(),
            absl::StatusCode::kInternal);
}

TEST(DecodeResponseTest, AcceptsTypedContents) {
  inference::ModelInferResponse response = OneOutput({2}, "");
  response.clear_raw_output_contents();
  response.mutable_outputs(0)->mutable_contents()->add_fp32_contents(1.5f);
  response.mutable_outputs(0)->mutable_contents()->add_fp32_contents(-2.0f);
  absl::StatusOr<InferResult> result = DecodeResponse(response);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->outputs[0].tensor.data, ElementsAre(1.5f, -2.0f));
}

inference::ModelMetadataResponse Metadata(
    std::vector<std::pair<std::string, std::vector<int64_t>>> inputs,
    std::vector<std::pair<std::string, std::vector<int64_t>>> outputs) {
  inference::ModelMetadataResponse metadata;
  for (const auto& [name, shape] : inputs) {
    auto* tensor = metadata.add_inputs();
    tensor->set_name(name);
    tensor->mutable_shape()->Add(shape.begin(), shape.end());
  }
  for (const auto& [name, shape] : outputs) {
    auto* tensor = metadata.add_outputs();
    tensor->set_name(name);
    tensor->mutable_shape()->Add(shape.begin(), shape.end());
  }
  return metadata;
}

TEST(DescribeModelTest, InputsAndOutputsFromMetadata) {
  const auto metadata =
      Metadata({{"x", {-1, 3, 32, 32}}, {"grad_y", {-1, 7}}},
               {{"y", {-1, 7}}, {"grad_0.weight", {7, 3072}}});
  absl::StatusOr<ModelTensors> model = DescribeModel(metadata, nullptr);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(model->inputs.size(), 2u);
  EXPECT_EQ(model->inputs[0].name, "x");
  EXPECT_THAT(model->inputs[0].row_shape, ElementsAre(3, 32, 32));
  EXPECT_FALSE(model->inputs[0].optional);
  // Without a ModelConfig, inputs after the first count as optional.
  EXPECT_TRUE(model->inputs[1].optional);
  EXPECT_THAT(model->outputs, ElementsAre("y", "grad_0.weight"));

  // A ModelConfig says which are.
  inference::ModelConfig config;
  config.add_input()->set_name("x");
  auto* grad_y = config.add_input();
  grad_y->set_name("grad_y");
  grad_y->set_optional(false);
  model = DescribeModel(metadata, &config);
  ASSERT_TRUE(model.ok());
  EXPECT_FALSE(model->inputs[1].optional);
}

TEST(DescribeModelTest, RefusesMissingOrVariableTensors) {
  EXPECT_EQ(
      DescribeModel(Metadata({{"x", {-1, -1}}}, {}), nullptr).status().code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(DescribeModel(Metadata({{"x", {-1}}}, {}), nullptr).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(DescribeModel(Metadata({}, {}), nullptr).status().message(),
              HasSubstr("lists no input"));
}

TEST(FromGrpcStatusTest, MapsEveryCodeToTheSameName) {
  for (int code = 0; code <= 16; ++code) {
    const absl::Status status = FromGrpcStatus(
        grpc::Status(static_cast<grpc::StatusCode>(code), "why"));
    EXPECT_EQ(static_cast<int>(status.code()), code);
    if (code != 0) {
      EXPECT_EQ(status.message(), "why");
    }
  }
  EXPECT_EQ(FromGrpcStatus(
                grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too big"))
                .code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(FromGrpcStatusTest, ExplainsGrpcsMessageSizeLimit) {
  const absl::Status status = FromGrpcStatus(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                   "Received message larger than max (61440035 vs. 53018624)"));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(),
              HasSubstr("(61440035 vs. 53018624): the request is larger than "
                        "the server accepts; send fewer rows"));
}

TEST(CheckBatchSizeTest, RefusesMoreRowsThanTheModelAccepts) {
  inference::ModelConfig config;
  config.set_name("linear_relu");
  config.set_max_batch_size(4096);
  InferInputs inputs;
  inputs.tensors = {{"x", Tensor{{4096, 3072}, {}}}};
  EXPECT_TRUE(CheckBatchSize(inputs, config).ok());
  inputs.tensors = {{"x", Tensor{{5000, 3, 32, 32}, {}}}};
  const absl::Status status = CheckBatchSize(inputs, config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("x has 5000 rows, more than the maximum batch size of "
                        "4096 that model \"linear_relu\" accepts"));
  config.set_max_batch_size(0);  // no stated limit
  EXPECT_TRUE(CheckBatchSize(inputs, config).ok());
}

}  // namespace
}  // namespace reluserve
