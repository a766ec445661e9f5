// LoadGenerator's open loop against an in-process fake GRPCInferenceService
// on 127.0.0.1 (tests/support/load_testing.h): the schedule, durations and
// drops; then both loops' backoff after UNAVAILABLE (gRPC's retries off) and
// a server that went away; and gRPC's retries in front of that backoff.

#include <chrono>
#include <vector>

#include "client/load_generator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/load_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::LoadGeneratorTest;
using ::testing::ElementsAre;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::Pair;

TEST_F(LoadGeneratorTest, OpenLoopStreamWithManyRequestsInFlight) {
  // 2 ms per message on one stream at 2000/s: requests queue up on the
  // stream and must still be matched in order.
  service_.delay_ms = 2;
  LoadOptions options = Options();
  options.stream = true;
  options.rates = {2000};
  options.arrivals = Arrivals::kConstant;
  options.requests = 60;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_TRUE(steps[0].open_loop);
  EXPECT_EQ(steps[0].requests, 60);
  EXPECT_EQ(steps[0].successes, 60)
      << ::testing::PrintToString(steps[0].first_error);
  EXPECT_EQ(steps[0].dropped, 0);
  EXPECT_EQ(service_.streams, 1);
  EXPECT_FALSE(service_.stream_ids_out_of_order);
  // Answers took longer than the schedule, so many were in flight at once.
  EXPECT_GT(steps[0].latency_ms.max, 20.0);
}

TEST_F(LoadGeneratorTest, OpenLoopNeverRunsAheadOfTheSchedule) {
  LoadOptions options = Options();
  options.rates = {400};
  options.arrivals = Arrivals::kConstant;
  options.requests = 100;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_DOUBLE_EQ(steps[0].rate, 400);
  EXPECT_EQ(steps[0].requests, 100);
  EXPECT_EQ(steps[0].successes, 100);
  EXPECT_EQ(steps[0].dropped, 0);
  // The 100th arrival is due 99/400 s after the first; a loaded machine may
  // send late, never early.
  EXPECT_GE(steps[0].seconds, 99 / 400.0);
  EXPECT_LE(steps[0].requests_per_second, 100 / (99 / 400.0));
}

TEST_F(LoadGeneratorTest, OpenLoopForADuration) {
  LoadOptions options = Options();
  options.rates = {400};
  options.arrivals = Arrivals::kConstant;
  options.duration_s = 0.5;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_DOUBLE_EQ(steps[0].seconds, 0.5);
  // At most the 200 arrivals of the window (timing on a busy machine may
  // leave the last ones unanswered inside it).
  EXPECT_GT(steps[0].requests, 0);
  EXPECT_LE(steps[0].requests, 201);
  EXPECT_EQ(steps[0].errors, 0);
  EXPECT_EQ(steps[0].dropped, 0);
}

TEST_F(LoadGeneratorTest, OpenLoopDropsAboveMaxInFlight) {
  service_.delay_ms = 100;
  LoadOptions options = Options();
  options.rates = {200};
  options.arrivals = Arrivals::kConstant;
  options.requests = 20;
  options.max_in_flight = 2;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_GT(steps[0].dropped, 10);
  EXPECT_EQ(steps[0].requests + steps[0].dropped, 20);
  EXPECT_EQ(steps[0].successes, steps[0].requests);
  EXPECT_EQ(service_.infer_calls, steps[0].requests);
}

TEST_F(LoadGeneratorTest, ClosedLoopBacksOffAfterUnavailable) {
  // Without the backoff, two slots answered at once would send thousands of
  // requests in a second.
  service_.unavailable_all = true;
  LoadOptions options = Options();
  options.channel.max_attempts = 1;  // reluserve-load's own backoff alone
  options.concurrency = {2};
  options.duration_s = 1.0;
  options.server_gone_after_s = 3600;  // only the backoff here
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_FALSE(steps[0].server_gone);
  EXPECT_THAT(steps[0].errors_by_code, ElementsAre(Pair("UNAVAILABLE", Gt(0))));
  // Per slot: 50, 80, 128, 205, 328 ms... (+-20%): at most 8 in 1 s.
  EXPECT_LE(service_.infer_calls, 2 * 8 + 2);
}

TEST_F(LoadGeneratorTest, RetriesAfterUnavailableAreCountedRequests) {
  // The slot backs off, then carries on: the 20 requests are 5 UNAVAILABLE
  // answers and 15 successes, and the step does not end while a retry waits.
  for (bool stream : {false, true}) {
    service_.unavailable_first = 5;
    LoadOptions options = Options();
    options.channel.max_attempts = 1;  // reluserve-load's own backoff alone
    options.stream = stream;
    options.concurrency = {1};
    options.requests = 20;
    const auto start = std::chrono::steady_clock::now();
    const std::vector<StepResult> steps = Run(options);
    ASSERT_EQ(steps.size(), 1u);
    EXPECT_FALSE(steps[0].server_gone) << "stream " << stream;
    EXPECT_EQ(steps[0].requests, 20) << "stream " << stream;
    EXPECT_EQ(steps[0].successes, 15) << "stream " << stream;
    EXPECT_THAT(steps[0].errors_by_code, ElementsAre(Pair("UNAVAILABLE", 5)))
        << "stream " << stream;
    // Five backoffs, 50 to 262 ms (+-20%): about 0.65 s in all.
    EXPECT_GE(std::chrono::steady_clock::now() - start,
              std::chrono::milliseconds(400))
        << "stream " << stream;
  }
}

TEST_F(LoadGeneratorTest, ServerAnsweringOnlyUnavailableHasGoneAway) {
  service_.unavailable_all = true;
  for (bool stream : {false, true}) {
    LoadOptions options = Options();
    options.channel.max_attempts = 1;  // reluserve-load's own backoff alone
    options.stream = stream;
    options.concurrency = {4, 8};
    options.duration_s = 30;
    options.server_gone_after_s = 0.5;
    const auto start = std::chrono::steady_clock::now();
    const std::vector<StepResult> steps = Run(options);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3))
        << "stream " << stream;
    ASSERT_EQ(steps.size(), 1u) << "stream " << stream;  // no second step
    EXPECT_TRUE(steps[0].server_gone) << "stream " << stream;
    EXPECT_GE(steps[0].server_gone_at_s, 0);
    EXPECT_LT(steps[0].server_gone_at_s, 0.5);
    EXPECT_THAT(steps[0].server_gone_error, HasSubstr("shutting down"));
    EXPECT_EQ(steps[0].successes, 0);
    EXPECT_GT(steps[0].errors, 0);
    // 4 slots, each backing off: a handful each before 0.5 s ran out.
    EXPECT_LE(steps[0].errors, 4 * 6) << "stream " << stream;
    EXPECT_LE(steps[0].seconds, 1.5) << "stream " << stream;
  }
}

TEST_F(LoadGeneratorTest, OpenLoopHoldsArrivalsBackAfterUnavailable) {
  service_.unavailable_all = true;
  LoadOptions options = Options();
  options.channel.max_attempts = 1;  // reluserve-load's own backoff alone
  options.rates = {1000};
  options.arrivals = Arrivals::kConstant;
  options.duration_s = 1.0;
  options.server_gone_after_s = 3600;  // only the backoff here
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_FALSE(steps[0].server_gone);
  // The gate: 50, 80, 128, 205, 328 ms... (+-20%) between requests sent,
  // about 7 openings in 1 s, each letting through the arrivals that come
  // before the UNAVAILABLE answer (1000 without the gate; a slow machine,
  // e.g. under ASan, lets more through per opening).
  EXPECT_LE(service_.infer_calls, 60);
  EXPECT_GT(steps[0].held_back, 900);
  EXPECT_EQ(steps[0].dropped, steps[0].held_back);
  EXPECT_EQ(steps[0].requests, steps[0].errors);
}

TEST_F(LoadGeneratorTest, OpenLoopServerGoneStopsTheSweep) {
  service_.unavailable_all = true;
  LoadOptions options = Options();
  options.channel.max_attempts = 1;  // reluserve-load's own backoff alone
  options.rates = {500, 1000};
  options.duration_s = 30;
  options.server_gone_after_s = 0.5;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<StepResult> steps = Run(options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_TRUE(steps[0].server_gone);
  // About 5 gate openings in 0.5 s, a few Poisson arrivals each (250
  // without the gate).
  EXPECT_LE(service_.infer_calls, 60);
}

TEST_F(LoadGeneratorTest, GrpcRetriesComeBeforeTheStepsOwnBackoff) {
  // 5 attempts a call (the default): gRPC resends each UNAVAILABLE call and
  // the step sees only successes. 2 attempts: 4 UNAVAILABLE answers are 2
  // failed requests (then the slot's own backoff, then successes).
  struct Case {
    int unavailable;
    int attempts;
    int64_t errors;
  };
  for (const Case& c : {Case{3, 5, 0}, Case{4, 2, 2}}) {
    service_.infer_calls = 0;
    service_.unavailable_first = c.unavailable;
    LoadOptions options = Options();
    options.channel.max_attempts = c.attempts;
    options.concurrency = {1};
    options.requests = 10;
    const std::vector<StepResult> steps = Run(options);
    ASSERT_EQ(steps.size(), 1u);
    EXPECT_EQ(steps[0].requests, 10) << c.attempts;
    EXPECT_EQ(steps[0].errors, c.errors) << c.attempts;
    EXPECT_EQ(steps[0].successes, 10 - c.errors) << c.attempts;
    EXPECT_EQ(service_.infer_calls, c.unavailable + 10 - c.errors);
    // With 5 attempts one request waited 50 + 100 + 200 ms (-20% at most).
    if (c.errors == 0) {
      EXPECT_GE(steps[0].latency_ms.max, 280);
    }
  }
}

}  // namespace
}  // namespace reluserve
