// reluserve-load --protocol http end to end against an in-process fake
// KServe v2 REST server (tests/support/fake_http_server.h): exact request
// counts, a keep-alive connection per slot, JSON and BF16 requests, errors
// by code, the backoff and "server went away" after 503s, statistics, the
// open loop, and what --protocol http refuses.

#include "client/load_http_calls.h"

#include <chrono>
#include <string>
#include <vector>

#include "client/load_generator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/fake_http_server.h"
#include "tests/support/load_testing.h"
#include "tests/support/port_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::FakeHttpServer;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::SizeIs;

class LoadHttpTest : public ::testing::Test {
 protected:
  LoadOptions Options() const {
    LoadOptions options;
    options.protocol = Protocol::kHttp;
    options.target = server_.target();
    options.warmup_s = 0;
    options.timeout = std::chrono::seconds(5);
    options.global_timeout_s = 60;
    return options;
  }

  FakeHttpServer server_;
};

TEST(CheckHttpTest, WantsTheIdAndEveryOutput) {
  EXPECT_TRUE(load_internal::CheckHttp({"7", 4, 96}, 7, 4).ok);
  const load_internal::Outcome wrong_id =
      load_internal::CheckHttp({"8", 4, 96}, 7, 4);
  EXPECT_FALSE(wrong_id.ok);
  EXPECT_EQ(wrong_id.code, "INTERNAL");
  EXPECT_THAT(wrong_id.message, HasSubstr("response id \"8\""));
  EXPECT_FALSE(load_internal::CheckHttp({"7", 1, 24}, 7, 4).ok);
}

TEST_F(LoadHttpTest, ClosedLoopRecordsExactlyTheRequestsAskedFor) {
  LoadOptions options = Options();
  options.concurrency = {3};
  options.requests = 40;
  const std::vector<StepResult> steps = testing::RunLoad(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].requests, 40);
  EXPECT_EQ(steps[0].successes, 40)
      << ::testing::PrintToString(steps[0].first_error);
  EXPECT_EQ(server_.infer_calls, 40);
  EXPECT_EQ(steps[0].latency_ms.count, 40);
  EXPECT_GT(steps[0].latency_ms.p50, 0);
  // A keep-alive connection per slot, none opened per request.
  EXPECT_THAT(server_.peers(), SizeIs(3));
  const FakeHttpServer::Seen seen = server_.last_request();
  EXPECT_EQ(seen.content_type, "application/octet-stream");
  const size_t header_length = std::stoul(seen.header_length);
  const nlohmann::json header =
      nlohmann::json::parse(seen.body.substr(0, header_length));
  EXPECT_EQ(header["inputs"][0]["shape"], nlohmann::json::parse("[1, 6]"));
  EXPECT_EQ(seen.body.size() - header_length, 4u * FakeHttpServer::kK);
  EXPECT_EQ(header["outputs"],
            nlohmann::json::parse(
                R"([{"name":"y","parameters":{"binary_data":true}}])"));
  // The server's statistics, over HTTP too.
  ASSERT_TRUE(steps[0].server.available) << steps[0].server.note;
  EXPECT_EQ(steps[0].server.delta.success.count, 40u);
}

TEST_F(LoadHttpTest, SweepKeepsTheConnectionsFromStepToStep) {
  LoadOptions options = Options();
  options.concurrency = {1, 4};
  options.duration_s = 0.2;
  options.batch = 2;
  options.grad = true;
  const std::vector<StepResult> steps = testing::RunLoad(options);
  ASSERT_EQ(steps.size(), 2u);
  for (const StepResult& step : steps) {
    EXPECT_GT(step.successes, 0);
    EXPECT_EQ(step.errors, 0) << ::testing::PrintToString(step.first_error);
    EXPECT_DOUBLE_EQ(step.rows_per_second, 2 * step.requests_per_second);
  }
  EXPECT_THAT(server_.peers(), SizeIs(4));
}

TEST_F(LoadHttpTest, JsonAndBf16Requests) {
  LoadOptions json = Options();
  json.http_tensors = HttpTensors::kJson;
  json.requests = 10;
  std::vector<StepResult> steps = testing::RunLoad(json);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].successes, 10)
      << ::testing::PrintToString(steps[0].first_error);
  EXPECT_EQ(server_.last_request().content_type, "application/json");

  LoadOptions bf16 = Options();
  bf16.dtype = WireType::kBf16;
  bf16.requests = 10;
  bf16.grad = true;
  steps = testing::RunLoad(bf16);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].successes, 10)
      << ::testing::PrintToString(steps[0].first_error);
  EXPECT_THAT(server_.last_request().body, HasSubstr(R"("datatype":"BF16")"));
}

TEST_F(LoadHttpTest, TimeoutsCountAsDeadlineExceeded) {
  server_.delay_ms = 80;
  LoadOptions options = Options();
  options.requests = 3;
  options.timeout = std::chrono::milliseconds(20);
  const std::vector<StepResult> steps = testing::RunLoad(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_THAT(steps[0].errors_by_code,
              ElementsAre(Pair("DEADLINE_EXCEEDED", 3)));
}

TEST_F(LoadHttpTest, ServerAnsweringOnly503HasGoneAway) {
  server_.unavailable_all = true;
  LoadOptions options = Options();
  options.channel.max_attempts = 1;  // reluserve-load's own backoff alone
  options.concurrency = {4, 8};
  options.duration_s = 30;
  options.server_gone_after_s = 0.5;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<StepResult> steps = testing::RunLoad(options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_TRUE(steps[0].server_gone);
  EXPECT_THAT(steps[0].server_gone_error, HasSubstr("shutting down"));
  EXPECT_EQ(steps[0].successes, 0);
  EXPECT_GT(steps[0].errors, 0);
  EXPECT_LE(steps[0].errors, 4 * 6);
  EXPECT_THAT(steps[0].errors_by_code, ElementsAre(Pair("UNAVAILABLE", _)));
}

TEST_F(LoadHttpTest, RetriesOn503ComeBeforeTheStepsOwnBackoff) {
  server_.unavailable_first = 2;
  LoadOptions options = Options();
  options.requests = 5;
  const std::vector<StepResult> steps = testing::RunLoad(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].successes, 5);
  EXPECT_EQ(steps[0].errors, 0);
  EXPECT_EQ(server_.infer_calls, 7);
}

TEST_F(LoadHttpTest, OpenLoopSendsOnSchedule) {
  LoadOptions options = Options();
  options.rates = {200};
  options.arrivals = Arrivals::kConstant;
  options.requests = 40;
  server_.delay_ms = 20;  // several in flight at once
  const std::vector<StepResult> steps = testing::RunLoad(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].requests, 40);
  EXPECT_EQ(steps[0].successes, 40);
  EXPECT_EQ(steps[0].dropped, 0);
  EXPECT_GE(server_.peers().size(), 2u);
}

TEST_F(LoadHttpTest, NoStatisticsIsANoteNotAFailure) {
  server_.statistics = false;
  LoadOptions options = Options();
  options.requests = 5;
  std::vector<std::string> notices;
  absl::StatusOr<std::vector<StepResult>> steps =
      LoadGenerator(options).Run([&notices](const LoadProgress& progress) {
        if (progress.kind == LoadProgress::Kind::kNotice) {
          notices.push_back(progress.message);
        }
      });
  ASSERT_TRUE(steps.ok()) << steps.status();
  EXPECT_EQ((*steps)[0].successes, 5);
  EXPECT_FALSE((*steps)[0].server.available);
  EXPECT_THAT((*steps)[0].server.note, HasSubstr("ModelStatistics"));
  EXPECT_THAT(notices, ElementsAre(HasSubstr("NOT_FOUND")));
}

TEST_F(LoadHttpTest, UnknownModelAndUnreachableServerMeasureNothing) {
  LoadOptions options = Options();
  options.model_name = "resnet";
  EXPECT_EQ(LoadGenerator(options).Run().status().code(),
            absl::StatusCode::kNotFound);
  const testing::HeldPort held;
  options = Options();
  options.target = held.target();
  options.connect_timeout = std::chrono::milliseconds(100);
  const absl::Status unreachable = LoadGenerator(options).Run().status();
  EXPECT_EQ(unreachable.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(unreachable.message(), HasSubstr("--connect-timeout-ms"));
}

TEST(LoadHttpOptionsTest, GrpcOnlyFlagsAreRefused) {
  LoadOptions options;
  options.protocol = Protocol::kHttp;
  options.target = "127.0.0.1:8000";
  EXPECT_TRUE(ValidateLoadOptions(options).ok());
  LoadOptions stream = options;
  stream.stream = true;
  EXPECT_THAT(ValidateLoadOptions(stream).message(),
              HasSubstr("--stream is gRPC-only"));
  LoadOptions channels = options;
  channels.channels = 2;
  EXPECT_THAT(ValidateLoadOptions(channels).message(),
              HasSubstr("--channels is gRPC-only"));
  LoadOptions bf16_json = options;
  bf16_json.dtype = WireType::kBf16;
  bf16_json.http_tensors = HttpTensors::kJson;
  EXPECT_THAT(ValidateLoadOptions(bf16_json).message(),
              HasSubstr("--dtype bf16"));
  LoadOptions list = options;
  list.target = "ipv4:127.0.0.1:8000,127.0.0.1:8001";
  EXPECT_EQ(ValidateLoadOptions(list).code(),
            absl::StatusCode::kInvalidArgument);
  LoadOptions grpc_json;
  grpc_json.http_tensors = HttpTensors::kJson;
  EXPECT_THAT(ValidateLoadOptions(grpc_json).message(),
              HasSubstr("--http-json goes with --protocol http"));
}

}  // namespace
}  // namespace reluserve
