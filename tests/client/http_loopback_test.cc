// The HTTP client and reluserve-load --protocol http against a real Server
// on loopback with both front ends on: every call answers as the gRPC
// Client's does on the same server (messages, numbers, error codes and
// messages), and a load run over HTTP measures what it sent.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "client/client.h"
#include "client/http_client.h"
#include "client/load_generator.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/core/weights.h"
#include "server/service/server.h"
#include "tests/support/load_testing.h"
#include "tests/support/model_testing.h"
#include "tests/support/tensor_testing.h"

namespace reluserve {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kIn = 24, kOut = 7;

class HttpLoopbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LinearWeights weights = MakeDefaultWeights(kIn, kOut, 3);
    weights.bias = testing::RandomValues(kOut, 4);
    Server::Options options;
    options.port = 0;
    options.http_port = 0;
    options.model.max_batch = 64;
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Start(options, testing::SingleLayerModel(weights));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->http_port(), 0);
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
    }
  }

  ClientOptions Options(Protocol protocol) const {
    ClientOptions options;
    options.target = protocol == Protocol::kHttp
                         ? "127.0.0.1:" + std::to_string(server_->http_port())
                         : server_->address();
    options.deadline = std::chrono::seconds(10);
    return options;
  }

  std::unique_ptr<InferenceClient> Connect(
      Protocol protocol, HttpTensors tensors = HttpTensors::kBinary) const {
    ClientOptions options = Options(protocol);
    options.http_tensors = tensors;
    return CreateInferenceClient(protocol, options);
  }

  // x [rows, kIn] and grad_y [rows, kOut].
  static InferInputs Inputs(int64_t rows) {
    InferInputs inputs;
    inputs.tensors.push_back(
        {"x", {{rows, kIn}, testing::RandomValues(rows * kIn, 10 + rows)}});
    inputs.tensors.push_back(
        {"grad_y",
         {{rows, kOut}, testing::RandomValues(rows * kOut, 20 + rows)}});
    inputs.id = "same";
    return inputs;
  }

  std::unique_ptr<Server> server_;
};

TEST_F(HttpLoopbackTest, HealthAndDescriptionsMatchGrpcs) {
  const std::unique_ptr<InferenceClient> grpc = Connect(Protocol::kGrpc);
  const std::unique_ptr<InferenceClient> http = Connect(Protocol::kHttp);
  ASSERT_TRUE(http->WaitForConnection(std::chrono::seconds(2)).ok());
  absl::StatusOr<HealthStatus> health = http->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_TRUE(health->live && health->ready && health->model_ready)
      << health->detail;

  absl::StatusOr<inference::ServerMetadataResponse> server =
      http->ServerMetadata();
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(server->name(), "reluserve");
  EXPECT_THAT(server->extensions(), ::testing::Contains("binary_tensor_data"));

  absl::StatusOr<inference::ModelMetadataResponse> metadata[2] = {
      grpc->ModelMetadata(), http->ModelMetadata()};
  absl::StatusOr<inference::ModelConfigResponse> config[2] = {
      grpc->ModelConfig(), http->ModelConfig()};
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(metadata[i].ok()) << metadata[i].status();
    ASSERT_TRUE(config[i].ok()) << config[i].status();
  }
  EXPECT_TRUE(MessageDifferencer::Equals(*metadata[0], *metadata[1]))
      << metadata[0]->DebugString() << "\nvs\n"
      << metadata[1]->DebugString();
  EXPECT_TRUE(MessageDifferencer::Equals(*config[0], *config[1]))
      << config[0]->DebugString() << "\nvs\n"
      << config[1]->DebugString();
  absl::StatusOr<ModelTensors> model =
      DescribeModel(*metadata[1], &config[1]->config());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_THAT(model->outputs,
              ElementsAre("y", "grad_x", "grad_weight", "grad_bias"));
  EXPECT_TRUE(model->inputs[1].optional);
}

TEST_F(HttpLoopbackTest, InferenceGivesGrpcsNumbersInBothForms) {
  const InferInputs inputs = Inputs(5);
  absl::StatusOr<InferResult> expected =
      Connect(Protocol::kGrpc)->Infer(inputs);
  ASSERT_TRUE(expected.ok()) << expected.status();
  for (HttpTensors form : {HttpTensors::kBinary, HttpTensors::kJson}) {
    absl::StatusOr<InferResult> result =
        Connect(Protocol::kHttp, form)->Infer(inputs);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->model_name, expected->model_name);
    EXPECT_EQ(result->model_version, expected->model_version);
    EXPECT_EQ(result->id, "same");
    ASSERT_EQ(result->outputs.size(), expected->outputs.size());
    for (size_t i = 0; i < expected->outputs.size(); ++i) {
      const NamedTensor& want = expected->outputs[i];
      const NamedTensor& got = result->outputs[i];
      EXPECT_EQ(got.name, want.name);
      EXPECT_EQ(got.tensor.shape, want.tensor.shape) << want.name;
      // The same server and batch: the same bits (JSON writes the shortest
      // form that reads back to the same float).
      EXPECT_EQ(got.tensor.data, want.tensor.data) << want.name;
    }
  }
}

TEST_F(HttpLoopbackTest, OutputsAskedForComeInTheirOrder) {
  InferInputs inputs = Inputs(2);
  inputs.output_names = {"grad_bias", "y"};
  absl::StatusOr<InferResult> result = Connect(Protocol::kHttp)->Infer(inputs);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->outputs.size(), 2u);
  EXPECT_EQ(result->outputs[0].name, "grad_bias");
  EXPECT_THAT(result->outputs[0].tensor.shape, ElementsAre(kOut));
  EXPECT_EQ(result->outputs[1].name, "y");
}

TEST_F(HttpLoopbackTest, ErrorsHaveGrpcsCodesAndMessages) {
  InferInputs wrong_shape = Inputs(2);
  wrong_shape.tensors[0].tensor = {{2, kIn + 1},
                                   std::vector<float>(2 * (kIn + 1), 1)};
  InferInputs too_many = Inputs(65);
  InferInputs no_such_output = Inputs(1);
  no_such_output.output_names = {"z"};
  for (const InferInputs& inputs : {wrong_shape, too_many, no_such_output}) {
    const absl::Status want = Connect(Protocol::kGrpc)->Infer(inputs).status();
    const absl::Status got = Connect(Protocol::kHttp)->Infer(inputs).status();
    EXPECT_EQ(want.code(), absl::StatusCode::kInvalidArgument) << want;
    EXPECT_EQ(got, want);
  }
  ClientOptions unknown = Options(Protocol::kHttp);
  unknown.model_name = "resnet";
  const absl::Status got = HttpClient(unknown).ModelMetadata().status();
  unknown = Options(Protocol::kGrpc);
  unknown.model_name = "resnet";
  const absl::Status want = Client(unknown).ModelMetadata().status();
  EXPECT_EQ(got.code(), absl::StatusCode::kNotFound) << got;
  EXPECT_EQ(got.message(), want.message());
  absl::StatusOr<HealthStatus> health = HttpClient(unknown).Health();
  EXPECT_FALSE(health.ok() && health->model_ready);
}

TEST_F(HttpLoopbackTest, StatisticsCountHttpRequests) {
  const std::unique_ptr<InferenceClient> http = Connect(Protocol::kHttp);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(http->Infer(Inputs(2)).ok());
  absl::StatusOr<inference::ModelStatisticsResponse> over_http =
      http->ModelStatistics();
  absl::StatusOr<inference::ModelStatisticsResponse> over_grpc =
      Connect(Protocol::kGrpc)->ModelStatistics();
  ASSERT_TRUE(over_http.ok()) << over_http.status();
  ASSERT_TRUE(over_grpc.ok()) << over_grpc.status();
  ASSERT_EQ(over_http->model_stats_size(), 1);
  EXPECT_EQ(over_http->model_stats(0).inference_stats().success().count(), 3u);
  EXPECT_EQ(over_http->model_stats(0).inference_count(), 6u);
  EXPECT_TRUE(MessageDifferencer::Equals(*over_http, *over_grpc));
}

TEST_F(HttpLoopbackTest, LoadOverHttpMeasuresWhatItSent) {
  for (WireType dtype : {WireType::kFp32, WireType::kBf16}) {
    LoadOptions options;
    options.protocol = Protocol::kHttp;
    options.target = Options(Protocol::kHttp).target;
    options.concurrency = {1, 3};
    options.requests = 30;
    options.warmup_s = 0;
    options.batch = 4;
    options.grad = true;
    options.dtype = dtype;
    options.global_timeout_s = 60;
    const std::vector<StepResult> steps = testing::RunLoad(options);
    ASSERT_EQ(steps.size(), 2u);
    for (const StepResult& step : steps) {
      EXPECT_EQ(step.successes, 30)
          << ::testing::PrintToString(step.first_error);
      EXPECT_EQ(step.errors, 0);
      ASSERT_TRUE(step.server.available) << step.server.note;
      EXPECT_EQ(step.server.delta.success.count, 30u);
      EXPECT_EQ(step.server.delta.inference_count, 120u);
    }
  }
}

TEST_F(HttpLoopbackTest, DrainingServerAnswersUnavailable) {
  const std::unique_ptr<InferenceClient> http = Connect(Protocol::kHttp);
  ASSERT_TRUE(http->Infer(Inputs(1)).ok());
  std::thread drain([this] {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
  });
  // Readiness turns 503 once the drain starts; an inference request then
  // gets 503 (after the client's retries) or, once the listener is gone,
  // finds no server.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  absl::StatusOr<HealthStatus> health;
  do {
    health = http->Health();
  } while (health.ok() && health->ready &&
           std::chrono::steady_clock::now() < until);
  EXPECT_TRUE(!health.ok() || !health->ready);
  EXPECT_EQ(http->Infer(Inputs(1)).status().code(),
            absl::StatusCode::kUnavailable);
  drain.join();
  server_.reset();
}

}  // namespace
}  // namespace reluserve
