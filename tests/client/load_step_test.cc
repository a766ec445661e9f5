// The timing rules of one reluserve-load step (load_internal::Step) on a
// FakeClock: latencies, the measured window and the global deadline, the
// warm-up, requests mode and a drain's cut, all to the nanosecond and
// without sleeping. The backoff rules: load_step_backoff_test.cc.

#include "client/load_step.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "tests/support/load_step_testing.h"

namespace reluserve {
namespace {

using namespace ::reluserve::load_step_testing;  // NOLINT: the fixture's names
using ::testing::ElementsAre;
using ::testing::Pair;

TEST_F(LoadStepTest, LatencyIsTheFakeTimeFromSendToAnswer) {
  std::unique_ptr<Step> step = MakeStep(true, 0, 1.0);
  step->EnterMeasure(t0_);
  const Ticket a = Claim(*step);
  clock_.Advance(milliseconds(3));
  const std::optional<Ticket> b = Answer(*step, a, t0_, kOk, /*replace=*/true);
  ASSERT_TRUE(b.has_value());
  const Clock::time_point b_sent = clock_.Now();
  clock_.Advance(microseconds(2500));
  Answer(*step, *b, b_sent, kOk);
  const StepResult result = Fill(*step);
  EXPECT_EQ(result.latency_ms.count, 2);
  EXPECT_DOUBLE_EQ(result.latency_ms.max, 3.0);
  EXPECT_DOUBLE_EQ(result.latency_ms.min, 2.5);
  EXPECT_DOUBLE_EQ(result.latency_ms.mean, 2.75);
  EXPECT_EQ(result.successes, 2);
}

TEST_F(LoadStepTest, MeasureWindowEndsAfterTheDuration) {
  std::unique_ptr<Step> step = MakeStep(true, 0, 1.0);
  step->EnterMeasure(t0_);
  const Clock::time_point t_end = t0_ + seconds(1);
  const Ticket a = Claim(*step);
  clock_.AdvanceTo(t0_ + milliseconds(999));
  // Answered inside the window: counted, and replaced.
  const std::optional<Ticket> b = Answer(*step, a, t0_, kOk, true);
  ASSERT_TRUE(b.has_value());
  const Clock::time_point b_sent = clock_.Now();
  // Requests leave until the window's last nanosecond.
  clock_.AdvanceTo(t_end - kTick);
  const Ticket c = Claim(*step);
  // An answer at t_end itself is counted, but not replaced any more.
  clock_.AdvanceTo(t_end);
  EXPECT_FALSE(Answer(*step, *b, b_sent, kOk, true).has_value());
  EXPECT_FALSE(step->Claim(0, false).has_value());
  // One nanosecond after t_end: past the window, success or error.
  clock_.AdvanceTo(t_end + kTick);
  Answer(*step, c, t_end - kTick, kInvalid);
  const StepResult result = Fill(*step);
  EXPECT_DOUBLE_EQ(result.seconds, 1.0);
  EXPECT_EQ(result.requests, 2);
  EXPECT_EQ(result.successes, 2);
  EXPECT_EQ(result.errors, 0);
  EXPECT_DOUBLE_EQ(result.latency_ms.max, 999.0);
  EXPECT_DOUBLE_EQ(result.latency_ms.min, 1.0);
  EXPECT_DOUBLE_EQ(result.requests_per_second, 2.0);
}

TEST_F(LoadStepTest, WindowEndsAtTheGlobalDeadlineIfEarlier) {
  std::unique_ptr<Step> step =
      MakeStep(true, 0, 1.0, {}, /*deadline=*/milliseconds(400));
  step->EnterMeasure(t0_);
  const Ticket a = Claim(*step);
  const Ticket b = Claim(*step);
  clock_.AdvanceTo(t0_ + milliseconds(400));
  Answer(*step, a, t0_, kOk);
  clock_.Advance(kTick);
  Answer(*step, b, t0_, kOk);
  const StepResult result = Fill(*step);
  EXPECT_DOUBLE_EQ(result.seconds, 0.4);
  EXPECT_EQ(result.successes, 1);
}

TEST_F(LoadStepTest, WarmupAnswersAreNotMeasured) {
  // With a duration, what counts is when the answer arrives: an answer in
  // the warm-up does not, one to a warm-up request inside the window does
  // (its latency includes the warm-up time it waited).
  std::unique_ptr<Step> step = MakeStep(true, 0, 1.0);
  EXPECT_EQ(step->Peek().phase, Phase::kWarmup);
  const Ticket a = Claim(*step);
  const Ticket b = Claim(*step);
  clock_.Advance(milliseconds(10));
  Answer(*step, a, t0_, kInvalid);
  EXPECT_EQ(step->Peek().answered, 0);
  const Clock::time_point t_measure = t0_ + milliseconds(50);
  clock_.AdvanceTo(t_measure);
  step->EnterMeasure(t_measure);
  clock_.Advance(milliseconds(10));
  Answer(*step, b, t0_, kOk);
  const StepResult result = Fill(*step);
  EXPECT_EQ(result.requests, 1);
  EXPECT_EQ(result.errors, 0);
  EXPECT_DOUBLE_EQ(result.latency_ms.max, 60.0);
  EXPECT_DOUBLE_EQ(result.seconds, 1.0);
}

TEST_F(LoadStepTest, RequestsModeCountsRequestsSentWhileMeasuring) {
  // With `requests`, what counts is when the request left; the window ends
  // at the last counted answer.
  std::unique_ptr<Step> step = MakeStep(true, 2, 1.0);
  const Ticket warm = Claim(*step);
  EXPECT_FALSE(warm.counted);
  const Clock::time_point t_measure = t0_ + milliseconds(10);
  clock_.AdvanceTo(t_measure);
  step->EnterMeasure(t_measure);
  const Ticket a = Claim(*step);
  const Ticket b = Claim(*step);
  EXPECT_TRUE(a.counted);
  EXPECT_TRUE(b.counted);
  EXPECT_FALSE(step->Claim(0, false).has_value());  // both counted sent
  clock_.AdvanceTo(t0_ + milliseconds(30));
  Answer(*step, a, t_measure, kOk);
  clock_.AdvanceTo(t0_ + milliseconds(45));
  Answer(*step, b, t_measure, kOk);
  clock_.AdvanceTo(t0_ + milliseconds(80));
  Answer(*step, warm, t0_, kOk);  // after the window's last: not counted
  const StepResult result = Fill(*step);
  EXPECT_EQ(result.requests, 2);
  EXPECT_DOUBLE_EQ(result.seconds, 0.035);
  EXPECT_DOUBLE_EQ(result.latency_ms.min, 20.0);
  EXPECT_DOUBLE_EQ(result.latency_ms.max, 35.0);
}

TEST_F(LoadStepTest, EnterDrainWithAReasonCutsTheWindowAtThePresent) {
  for (StopReason reason : {StopReason::kTimedOut, StopReason::kServerGone}) {
    const Clock::time_point start = clock_.Now();
    std::unique_ptr<Step> step = MakeStep(true, 0, 10.0);
    step->EnterMeasure(start);
    const Ticket a = Claim(*step);
    const Ticket b = Claim(*step);
    clock_.AdvanceTo(start + seconds(2));
    step->EnterDrain(reason);
    EXPECT_FALSE(step->Claim(0, false).has_value());
    Answer(*step, a, start, kOk);  // at the cut: counted
    clock_.Advance(kTick);
    Answer(*step, b, start, kOk);  // past it: not
    const StepResult result = Fill(*step);
    const bool timed_out = reason == StopReason::kTimedOut;
    EXPECT_DOUBLE_EQ(result.seconds, 2.0) << timed_out;
    EXPECT_EQ(result.successes, 1) << timed_out;
    EXPECT_EQ(result.timed_out, timed_out);
    clock_.Advance(seconds(100));
  }
}

TEST_F(LoadStepTest, EnterDrainFinishedKeepsTheWindow) {
  std::unique_ptr<Step> step = MakeStep(false, 0, 1.0);
  step->EnterMeasure(t0_);
  const std::optional<Ticket> a = Arrive(*step);
  const std::optional<Ticket> b = Arrive(*step);
  ASSERT_TRUE(a.has_value() && b.has_value());
  // The open loop stops once the next arrival would be past the window,
  // which may be before its end: answers until t_end still count.
  clock_.AdvanceTo(t0_ + milliseconds(600));
  step->EnterDrain(StopReason::kFinished);
  clock_.AdvanceTo(t0_ + seconds(1));
  Answer(*step, *a, t0_, kOk);
  clock_.Advance(kTick);
  Answer(*step, *b, t0_, kOk);
  const StepResult result = Fill(*step);
  EXPECT_DOUBLE_EQ(result.seconds, 1.0);
  EXPECT_EQ(result.successes, 1);
  EXPECT_FALSE(result.timed_out);
}

TEST_F(LoadStepTest, DrainCutIsNeverPastTheGlobalDeadline) {
  std::unique_ptr<Step> step =
      MakeStep(true, 0, 10.0, {}, /*deadline=*/milliseconds(1500));
  step->EnterMeasure(t0_);
  const Ticket a = Claim(*step);
  // The driver woke late.
  clock_.AdvanceTo(t0_ + milliseconds(1700));
  step->EnterDrain(StopReason::kTimedOut);
  Answer(*step, a, t0_, kOk);
  const StepResult result = Fill(*step);
  EXPECT_DOUBLE_EQ(result.seconds, 1.5);
  EXPECT_EQ(result.successes, 0);
  EXPECT_TRUE(result.timed_out);
}

}  // namespace
}  // namespace reluserve
