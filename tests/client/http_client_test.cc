// The HttpClient against an in-process fake KServe v2 REST server
// (tests/support/fake_http_server.h): health, metadata, config and
// statistics parsed into the gRPC messages, inference in binary and JSON
// form, and errors with the server's message.

#include "client/http_client.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/fake_http_server.h"
#include "tests/support/port_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::FakeHttpServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class HttpClientTest : public ::testing::Test {
 protected:
  ClientOptions Options() const {
    ClientOptions options;
    options.target = server_.target();
    options.deadline = std::chrono::seconds(5);
    options.channel.max_attempts = 1;
    return options;
  }

  // x [2, 6] with negative and positive values; grad_y [2, 3] with `grad`.
  static InferInputs Inputs(bool grad = false) {
    InferInputs inputs;
    inputs.tensors.push_back(
        {"x",
         {{2, FakeHttpServer::kK},
          {-1, 2, -3, 4, 0.5f, 6, 7, -8, 9, 0, -1.5f, 2.25f}}});
    if (grad) {
      inputs.tensors.push_back(
          {"grad_y", {{2, FakeHttpServer::kM}, {1, 1, 1, 1, 1, 1}}});
    }
    return inputs;
  }

  FakeHttpServer server_;
};

TEST_F(HttpClientTest, HealthReadsTheThreeAnswers) {
  const HttpClient client(Options());
  absl::StatusOr<HealthStatus> health = client.Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_TRUE(health->live);
  EXPECT_TRUE(health->ready);
  EXPECT_TRUE(health->model_ready);
  EXPECT_THAT(health->detail, IsEmpty());

  server_.ready = false;
  health = client.Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_FALSE(health->ready);
  EXPECT_THAT(health->detail, IsEmpty()) << "a plain 503 says all";

  ClientOptions other = Options();
  other.model_name = "resnet";
  health = HttpClient(other).Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_FALSE(health->model_ready);
  EXPECT_EQ(health->detail, "model ready: NOT_FOUND: unknown model 'resnet'");

  other.model_name.clear();
  health = HttpClient(other).Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_TRUE(health->model_ready) << "no model named: not asked";
}

TEST_F(HttpClientTest, UnreachableServerFailsHealth) {
  const testing::HeldPort held;
  ClientOptions options = Options();
  options.target = held.target();
  const HttpClient client(options);
  EXPECT_EQ(client.Health().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client.WaitForConnection(std::chrono::milliseconds(100)).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(HttpClientTest, MetadataAndConfigDescribeTheModel) {
  const HttpClient client(Options());
  ASSERT_TRUE(client.WaitForConnection(std::chrono::seconds(2)).ok());
  absl::StatusOr<inference::ServerMetadataResponse> server =
      client.ServerMetadata();
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(server->name(), "fake");
  EXPECT_THAT(server->extensions(),
              ElementsAre("binary_tensor_data", "statistics"));

  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      client.ModelMetadata();
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  absl::StatusOr<inference::ModelConfigResponse> config = client.ModelConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->config().max_batch_size(), 8);
  absl::StatusOr<ModelTensors> model =
      DescribeModel(*metadata, &config->config());
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ(model->inputs.size(), 2u);
  EXPECT_EQ(model->inputs[0].name, "x");
  EXPECT_THAT(model->inputs[0].row_shape, ElementsAre(FakeHttpServer::kK));
  EXPECT_FALSE(model->inputs[0].optional);
  EXPECT_TRUE(model->inputs[1].optional);
  EXPECT_THAT(model->outputs,
              ElementsAre("y", "grad_x", "grad_weight", "grad_bias"));

  ClientOptions versioned = Options();
  versioned.model_version = "1";
  EXPECT_TRUE(HttpClient(versioned).ModelMetadata().ok());
  versioned.model_name = "resnet";
  EXPECT_EQ(HttpClient(versioned).ModelMetadata().status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(HttpClientTest, StatisticsParseIntoTheGrpcMessage) {
  const HttpClient client(Options());
  ASSERT_TRUE(client.Infer(Inputs()).ok());
  absl::StatusOr<inference::ModelStatisticsResponse> stats =
      client.ModelStatistics();
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->model_stats_size(), 1);
  EXPECT_EQ(stats->model_stats(0).version(), "1");
  EXPECT_EQ(stats->model_stats(0).inference_count(), 1u);
  EXPECT_EQ(stats->model_stats(0).inference_stats().success().ns(), 1000u);

  server_.statistics = false;
  EXPECT_EQ(client.ModelStatistics().status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(HttpClientTest, InferSendsBinaryTensorsByDefault) {
  const HttpClient client(Options());
  InferInputs inputs = Inputs();
  inputs.id = "req-1";
  absl::StatusOr<InferResult> result = client.Infer(inputs);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(server_.last_request().content_type, "application/octet-stream");
  EXPECT_EQ(result->model_name, "linear_relu");
  EXPECT_EQ(result->model_version, "1");
  EXPECT_EQ(result->id, "req-1");
  ASSERT_EQ(result->outputs.size(), 1u);
  EXPECT_EQ(result->outputs[0].name, "y");
  EXPECT_THAT(result->outputs[0].tensor.shape, ElementsAre(2, 6));
  EXPECT_THAT(result->outputs[0].tensor.data,
              ElementsAre(0, 2, 0, 4, 0.5f, 6, 7, 0, 9, 0, 0, 2.25f));
  EXPECT_GT(result->round_trip, std::chrono::steady_clock::duration::zero());
}

TEST_F(HttpClientTest, InferAsksForTheOutputsNamed) {
  const HttpClient client(Options());
  InferInputs inputs = Inputs(/*grad=*/true);
  absl::StatusOr<InferResult> all = client.Infer(inputs);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->outputs.size(), 4u) << "the default set with grad_y";
  inputs.output_names = {"grad_bias", "y"};
  absl::StatusOr<InferResult> two = client.Infer(inputs);
  ASSERT_TRUE(two.ok()) << two.status();
  ASSERT_EQ(two->outputs.size(), 2u);
  EXPECT_EQ(two->outputs[0].name, "grad_bias");
  EXPECT_EQ(two->outputs[1].name, "y");
}

TEST_F(HttpClientTest, InferInJsonFormFlatOrNested) {
  ClientOptions options = Options();
  options.http_tensors = HttpTensors::kJson;
  const HttpClient client(options);
  for (bool nested : {false, true}) {
    server_.nested_json = nested;
    absl::StatusOr<InferResult> result = client.Infer(Inputs());
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(server_.last_request().content_type, "application/json");
    EXPECT_THAT(server_.last_request().header_length, IsEmpty());
    EXPECT_THAT(result->outputs[0].tensor.data,
                ElementsAre(0, 2, 0, 4, 0.5f, 6, 7, 0, 9, 0, 0, 2.25f));
  }
}

TEST_F(HttpClientTest, PreparedRequestsGoOutAgain) {
  const std::unique_ptr<InferenceClient> client =
      CreateInferenceClient(Protocol::kHttp, Options());
  absl::StatusOr<std::unique_ptr<PreparedInfer>> prepared =
      client->Prepare(Inputs());
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<InferResult> result = (*prepared)->Send();
    ASSERT_TRUE(result.ok()) << result.status();
  }
  EXPECT_EQ(server_.infer_calls, 3);
  EXPECT_EQ(server_.peers().size(), 1u);
}

TEST_F(HttpClientTest, ErrorsCarryTheServersMessage) {
  const HttpClient client(Options());
  InferInputs inputs = Inputs();
  inputs.id = "fail-400";
  EXPECT_EQ(client.Infer(inputs).status(),
            absl::InvalidArgumentError("input 'x': wrong datatype"));

  server_.unavailable_all = true;
  EXPECT_EQ(client.Infer(Inputs()).status(),
            absl::UnavailableError("shutting down"));

  InferInputs mismatched = Inputs();
  mismatched.tensors[0].tensor.data.pop_back();
  EXPECT_EQ(client.Prepare(mismatched).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(HttpClientTest, RetriesUnavailableWithMaxAttempts) {
  server_.unavailable_first = 2;
  ClientOptions options = Options();
  options.channel.max_attempts = 3;
  absl::StatusOr<InferResult> result = HttpClient(options).Infer(Inputs());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(server_.infer_calls, 3);
}

TEST_F(HttpClientTest, BadTargetIsInvalidArgument) {
  ClientOptions options = Options();
  options.target = "ipv4:127.0.0.1:8000,127.0.0.1:8001";
  const HttpClient client(options);
  EXPECT_EQ(client.Health().status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(client.Infer(Inputs()).status().message(),
              HasSubstr("takes one HOST:PORT"));
}

}  // namespace
}  // namespace reluserve
