// LoadGenerator end to end against an in-process fake GRPCInferenceService
// on 127.0.0.1 (tests/support/load_testing.h): exact request counts, errors
// by code, streams in order, statistics deltas, separate connections, the
// global timeout and progress, and an unreachable target. The open loop and
// the backoff after UNAVAILABLE are in load_open_loop_test.cc.

#include "client/load_generator.h"

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "grpc_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/support/load_testing.h"
#include "tests/support/port_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::kK;
using ::reluserve::testing::kM;
using ::reluserve::testing::LoadGeneratorTest;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

TEST_F(LoadGeneratorTest, ClosedLoopRecordsExactlyTheRequestsAskedFor) {
  LoadOptions options = Options();
  options.concurrency = {4};
  options.requests = 50;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].concurrency, 4);
  EXPECT_EQ(steps[0].requests, 50);
  EXPECT_EQ(steps[0].successes, 50);
  EXPECT_EQ(steps[0].errors, 0);
  EXPECT_EQ(steps[0].latency_ms.count, 50);
  EXPECT_EQ(service_.infer_calls, 50);  // no warm-up: nothing else was sent
  EXPECT_GT(steps[0].requests_per_second, 0);
  EXPECT_DOUBLE_EQ(steps[0].rows_per_second, steps[0].requests_per_second);
  EXPECT_GT(steps[0].latency_ms.p50, 0);
  EXPECT_LE(steps[0].latency_ms.p50, steps[0].latency_ms.p99);
  EXPECT_LE(steps[0].latency_ms.p99, steps[0].latency_ms.max);
}

TEST_F(LoadGeneratorTest, WarmupIsNotCounted) {
  LoadOptions options = Options();
  options.concurrency = {2};
  options.requests = 20;
  options.warmup_s = 0.2;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].requests, 20);
  EXPECT_GT(service_.infer_calls, 20);
}

TEST_F(LoadGeneratorTest, SweepRunsOneStepPerConcurrency) {
  LoadOptions options = Options();
  options.concurrency = {1, 3};
  options.duration_s = 0.2;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].concurrency, 1);
  EXPECT_EQ(steps[1].concurrency, 3);
  for (const StepResult& step : steps) {
    EXPECT_DOUBLE_EQ(step.seconds, 0.2);
    EXPECT_GT(step.successes, 0);
    EXPECT_EQ(step.errors, 0);
  }
}

TEST_F(LoadGeneratorTest, ErrorsAreCountedByCode) {
  service_.fail_all = true;
  LoadOptions options = Options();
  options.concurrency = {4};
  options.requests = 50;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].requests, 50);
  EXPECT_EQ(steps[0].successes, 0);
  EXPECT_EQ(steps[0].errors, 50);
  EXPECT_THAT(steps[0].errors_by_code,
              ElementsAre(Pair("INVALID_ARGUMENT", 50)));
  EXPECT_THAT(steps[0].first_error.at("INVALID_ARGUMENT"), HasSubstr("INT8"));
  EXPECT_EQ(steps[0].latency_ms.count, 0);
}

TEST_F(LoadGeneratorTest, StreamingMatchesResponsesInOrder) {
  LoadOptions options = Options();
  options.stream = true;
  options.concurrency = {4};
  options.requests = 50;
  options.channels = 2;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].requests, 50);
  EXPECT_EQ(steps[0].successes, 50);  // an out-of-order id would be an error
  EXPECT_EQ(steps[0].errors, 0)
      << ::testing::PrintToString(steps[0].first_error);
  EXPECT_EQ(service_.streams, 4);  // one per in-flight slot
  EXPECT_EQ(service_.stream_messages, 50);
  EXPECT_EQ(service_.infer_calls, 0);
  EXPECT_FALSE(service_.stream_ids_out_of_order);
}

TEST_F(LoadGeneratorTest, StreamingErrorsAreCountedAndTheStreamStaysOpen) {
  service_.fail_all = true;
  LoadOptions options = Options();
  options.stream = true;
  options.concurrency = {2};
  options.requests = 30;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].requests, 30);
  EXPECT_THAT(steps[0].errors_by_code,
              ElementsAre(Pair("INVALID_ARGUMENT", 30)));
  EXPECT_EQ(service_.streams, 2);
}

TEST_F(LoadGeneratorTest, TimeoutsCountAsDeadlineExceeded) {
  service_.delay_ms = 60;
  for (bool stream : {false, true}) {
    LoadOptions options = Options();
    options.stream = stream;
    options.requests = 4;
    options.timeout = std::chrono::milliseconds(15);
    const std::vector<StepResult> steps = Run(options);
    ASSERT_EQ(steps.size(), 1u);
    EXPECT_EQ(steps[0].requests, 4) << "stream " << stream;
    EXPECT_THAT(steps[0].errors_by_code,
                ElementsAre(Pair("DEADLINE_EXCEEDED", 4)))
        << "stream " << stream;
  }
}

TEST_F(LoadGeneratorTest, ServerStatisticsAreDifferenced) {
  LoadOptions options = Options();
  options.concurrency = {2};
  options.requests = 20;
  options.batch = 3;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  const ServerSplit& server = steps[0].server;
  ASSERT_TRUE(server.available) << server.note;
  EXPECT_EQ(server.delta.success.count, 20u);
  EXPECT_DOUBLE_EQ(server.delta.queue.MeanUs(), 1.0);
  EXPECT_DOUBLE_EQ(server.delta.compute_input.MeanUs(), 2.0);
  EXPECT_DOUBLE_EQ(server.delta.compute_infer.MeanUs(), 5.0);
  EXPECT_DOUBLE_EQ(server.delta.compute_output.MeanUs(), 0.5);
  EXPECT_EQ(server.delta.execution_count, 10u);
  EXPECT_DOUBLE_EQ(server.delta.RequestsPerExecution(), 2.0);
  EXPECT_EQ(server.delta.inference_count, 60u);
}

TEST_F(LoadGeneratorTest, UnimplementedStatisticsAreNoticedOnce) {
  service_.statistics = false;
  LoadOptions options = Options();
  options.concurrency = {1, 2};
  options.requests = 5;
  std::vector<std::string> notices;
  int steps_done = 0;
  absl::StatusOr<std::vector<StepResult>> steps =
      LoadGenerator(options).Run([&](const LoadProgress& progress) {
        if (progress.kind == LoadProgress::Kind::kNotice) {
          notices.push_back(progress.message);
        }
        if (progress.kind == LoadProgress::Kind::kStepDone) {
          ASSERT_NE(progress.result, nullptr);
          EXPECT_EQ(progress.result->index, steps_done);
          ++steps_done;
        }
      });
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ(steps_done, 2);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_THAT(notices[0], HasSubstr("UNIMPLEMENTED"));
  EXPECT_EQ(service_.statistics_calls, 1);  // not asked again
  for (const StepResult& step : *steps) {
    EXPECT_FALSE(step.server.available);
    EXPECT_THAT(step.server.note, HasSubstr("ModelStatistics"));
    EXPECT_EQ(step.successes, 5);
  }
}

TEST_F(LoadGeneratorTest, ChannelsAreSeparateConnections) {
  LoadOptions options = Options();
  options.channels = 3;
  options.concurrency = {3};
  options.requests = 30;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].successes, 30);
  // Each connection has its own client port.
  EXPECT_EQ(service_.peers().size(), 3u)
      << ::testing::PrintToString(service_.peers());
}

TEST_F(LoadGeneratorTest, GradBf16RequestsCarryEverything) {
  LoadOptions options = Options();
  options.grad = true;
  options.dtype = WireType::kBf16;
  options.batch = 5;
  options.requests = 3;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].successes, 3);
  const inference::ModelInferRequest request = service_.last_request();
  ASSERT_EQ(request.inputs_size(), 2);
  EXPECT_EQ(request.inputs(0).datatype(), "BF16");
  EXPECT_THAT(request.inputs(0).shape(), ElementsAre(5, kK));
  EXPECT_EQ(request.raw_input_contents(0).size(), 5u * kK * 2);
  EXPECT_EQ(request.inputs(1).name(), "grad_y");
  EXPECT_EQ(request.raw_input_contents(1).size(), 5u * kM * 2);
  EXPECT_EQ(request.outputs_size(), 4);
}

TEST_F(LoadGeneratorTest, GlobalTimeoutCutsTheStepShort) {
  LoadOptions options = Options();
  options.concurrency = {2, 4};
  options.duration_s = 30;
  options.global_timeout_s = 0.5;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<StepResult> steps = Run(options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_EQ(steps.size(), 1u);  // the second step never ran
  EXPECT_TRUE(steps[0].timed_out);
  EXPECT_GT(steps[0].successes, 0);
  // The window ends at the global deadline, however late the driver wakes.
  EXPECT_GT(steps[0].seconds, 0);
  EXPECT_LE(steps[0].seconds, 0.5);
}

TEST_F(LoadGeneratorTest, ProgressTicksWhileRunning) {
  LoadOptions options = Options();
  options.concurrency = {1};
  options.duration_s = 0.35;
  options.warmup_s = 0.1;
  options.progress_interval_s = 0.05;
  int ticks = 0, warmup_ticks = 0;
  absl::StatusOr<std::vector<StepResult>> steps =
      LoadGenerator(options).Run([&](const LoadProgress& progress) {
        if (progress.kind != LoadProgress::Kind::kTick) return;
        ++ticks;
        if (progress.warming_up) ++warmup_ticks;
        EXPECT_EQ(progress.steps, 1);
      });
  ASSERT_TRUE(steps.ok()) << steps.status();
  EXPECT_GE(ticks, 4);
  EXPECT_GE(warmup_ticks, 1);
}

TEST_F(LoadGeneratorTest, UnknownModelFailsBeforeMeasuring) {
  LoadOptions options = Options();
  options.model_name = "nope";
  absl::StatusOr<std::vector<StepResult>> steps = LoadGenerator(options).Run();
  EXPECT_EQ(steps.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(steps.status().message(), HasSubstr("ModelMetadata"));
}

TEST(LoadGeneratorStandaloneTest, UnreachableTargetIsUnavailable) {
  const testing::HeldPort held;
  ASSERT_GT(held.port(), 0);
  LoadOptions options;
  options.target = held.target();
  options.timeout = std::chrono::milliseconds(5000);  // not what counts
  options.connect_timeout = std::chrono::milliseconds(300);
  options.channels = 3;  // one deadline for all, not one each
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<StepResult>> steps = LoadGenerator(options).Run();
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(steps.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(steps.status().message(),
              HasSubstr("cannot reach " + options.target +
                        ": no connection within 300 ms (pass "
                        "--connect-timeout-ms to wait longer)"));
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::milliseconds(2000));
}

TEST(LoadOptionsTest, Validation) {
  LoadOptions options;
  EXPECT_TRUE(ValidateLoadOptions(options).ok());
  options.concurrency.clear();
  EXPECT_EQ(ValidateLoadOptions(options).code(),
            absl::StatusCode::kInvalidArgument);
  options.rates = {0};
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.rates = {10};
  EXPECT_TRUE(ValidateLoadOptions(options).ok());
  options.batch = 0;
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.batch = 1;
  options.channels = 0;
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.channels = 1;
  options.connect_timeout = std::chrono::milliseconds(0);
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.connect_timeout = std::chrono::milliseconds(1000);
  options.backoff.multiplier = 0.5;  // would shrink
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.backoff.multiplier = 2;
  options.backoff.max = std::chrono::milliseconds(10);  // below initial
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.backoff.max = std::chrono::milliseconds(2000);
  EXPECT_TRUE(ValidateLoadOptions(options).ok());
}

}  // namespace
}  // namespace reluserve
