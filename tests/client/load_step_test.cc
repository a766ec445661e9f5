// The timing rules of one reluserve-load step (load_internal::Step), on a
// FakeClock (tests/support/load_testing.h): the measured window, a drain's
// cut, the backoff after UNAVAILABLE (closed-loop retries, the open-loop
// gate), the server gone, NextWake and WaitUntil, and latencies, all to the
// nanosecond and without sleeping. Then the Driver's open-loop schedule on
// the fake clock against the in-process fake server.

#include "client/load_step.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "client/channel.h"
#include "client/load_backoff.h"
#include "client/load_driver.h"
#include "client/load_generator.h"
#include "client/load_stats.h"
#include "gmock/gmock.h"
#include "grpc_service.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "tests/support/load_testing.h"

namespace reluserve {
namespace {

using load_internal::Clock;
using load_internal::Driver;
using load_internal::FromSeconds;
using load_internal::Outcome;
using load_internal::Phase;
using load_internal::Step;
using load_internal::StepPolicy;
using load_internal::StopReason;
using load_internal::Ticket;
using load_internal::Transport;
using ::reluserve::testing::FakeClock;
using std::chrono::hours;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;
using ::testing::ElementsAre;
using ::testing::Pair;

const Outcome kOk{};
const Outcome kUnavailable{false, "UNAVAILABLE", "shutting down"};
const Outcome kInvalid{false, "INVALID_ARGUMENT", "bad input"};

constexpr nanoseconds kTick{1};  // the clock's resolution
constexpr int kMaxInFlight = 100;

// The step's jitter draws replayed: the n-th backoff it computes (retry or
// gate, whichever comes) uses the n-th uniform of mt19937_64(jitter_seed).
class Jitter {
 public:
  explicit Jitter(uint64_t seed) : engine_(seed) {}
  Clock::duration Next(const BackoffPolicy& policy, int attempt) {
    const double uniform =
        std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
    return BackoffDelay(policy, attempt, uniform);
  }

 private:
  std::mt19937_64 engine_;
};

// A policy where only the backoff acts: the server is never judged gone.
StepPolicy BackoffOnly(uint64_t seed) {
  StepPolicy policy;
  policy.gone_after = hours(1000);
  policy.jitter_seed = seed;
  return policy;
}

class LoadStepTest : public ::testing::Test {
 protected:
  // `deadline`: the global deadline, from the present.
  std::unique_ptr<Step> MakeStep(bool closed_loop, int64_t requests,
                                 double duration_s, StepPolicy policy = {},
                                 Clock::duration deadline = hours(1)) {
    return std::make_unique<Step>(std::make_shared<Transport>(), closed_loop,
                                  requests, duration_s, clock_.Now() + deadline,
                                  policy, clock_);
  }

  // Closed loop; no reactor counted, so the step is idle between calls.
  Ticket Claim(Step& step, int channel = 0) {
    std::optional<Ticket> ticket = step.Claim(channel, /*new_reactor=*/false);
    EXPECT_TRUE(ticket.has_value()) << "no request claimed";
    return ticket.value_or(Ticket{});
  }
  // Open loop, on time.
  std::optional<Ticket> Arrive(Step& step, int max_in_flight = kMaxInFlight) {
    return step.ClaimScheduled(0, /*new_reactor=*/false, max_in_flight,
                               /*late=*/false);
  }
  // The answer to `ticket`, sent at `sent`, arriving at the present.
  std::optional<Ticket> Answer(Step& step, const Ticket& ticket,
                               Clock::time_point sent, const Outcome& outcome,
                               bool replace = false) {
    return step.Record(ticket, sent, outcome, replace, /*new_reactor=*/false);
  }
  static StepResult Fill(Step& step) {
    StepResult result;
    step.Fill(result, /*batch=*/1);
    return result;
  }

  FakeClock clock_;
  const Clock::time_point t0_ = clock_.Now();
};

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

TEST_F(LoadStepTest, ClosedLoopRetryIsDueExactlyAtTheBackoff) {
  const StepPolicy policy = BackoffOnly(42);
  Jitter jitter(policy.jitter_seed);
  std::unique_ptr<Step> step = MakeStep(true, 0, 100.0, policy);
  step->EnterMeasure(t0_);
  const Ticket a = Claim(*step, /*channel=*/1);
  EXPECT_EQ(a.attempt, 0);
  clock_.Advance(milliseconds(5));
  // No replacement at once: a retry, after the first backoff.
  EXPECT_FALSE(Answer(*step, a, t0_, kUnavailable, true).has_value());
  const Clock::time_point due = clock_.Now() + jitter.Next(policy.backoff, 1);
  EXPECT_EQ(step->NextWake(), due);
  EXPECT_FALSE(step->Idle());
  EXPECT_TRUE(step->ClaimDueRetries(due - kTick, false).empty());
  std::vector<Ticket> retries = step->ClaimDueRetries(due, false);
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(retries[0].channel, 1);
  EXPECT_EQ(retries[0].attempt, 1);
  EXPECT_EQ(step->NextWake(), Clock::time_point::max());
  EXPECT_TRUE(step->ClaimDueRetries(Clock::time_point::max(), false).empty());

  // UNAVAILABLE again: the second backoff of the schedule, with the next
  // draw of the jitter.
  clock_.AdvanceTo(due + milliseconds(2));
  Answer(*step, retries[0], due, kUnavailable, true);
  const Clock::time_point due2 = clock_.Now() + jitter.Next(policy.backoff, 2);
  EXPECT_EQ(step->NextWake(), due2);
  EXPECT_TRUE(step->ClaimDueRetries(due2 - kTick, false).empty());
  retries = step->ClaimDueRetries(due2, false);
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(retries[0].attempt, 2);

  // A success resets the slot: replaced at once, and the next UNAVAILABLE
  // backs off from the first delay again.
  clock_.AdvanceTo(due2 + milliseconds(1));
  const std::optional<Ticket> next = Answer(*step, retries[0], due2, kOk, true);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->attempt, 0);
  EXPECT_EQ(next->channel, 1);
  clock_.Advance(milliseconds(1));
  Answer(*step, *next, due2 + milliseconds(1), kUnavailable, true);
  const Clock::time_point due3 = clock_.Now() + jitter.Next(policy.backoff, 1);
  EXPECT_EQ(step->NextWake(), due3);
  EXPECT_TRUE(step->ClaimDueRetries(due3 - kTick, false).empty());
  retries = step->ClaimDueRetries(due3, false);
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_EQ(retries[0].attempt, 1);

  const StepResult result = Fill(*step);
  EXPECT_THAT(result.errors_by_code, ElementsAre(Pair("UNAVAILABLE", 3)));
  EXPECT_EQ(result.successes, 1);
}

TEST_F(LoadStepTest, TheJitterSeedPicksTheBackoff) {
  // Two seeds, two delays inside the +-20% band of 50 ms; each exactly the
  // step's.
  std::vector<Clock::duration> delays;
  for (uint64_t seed : {1u, 2u}) {
    const StepPolicy policy = BackoffOnly(seed);
    std::unique_ptr<Step> step = MakeStep(true, 0, 100.0, policy);
    step->EnterMeasure(clock_.Now());
    const Clock::time_point sent = clock_.Now();
    const Ticket a = Claim(*step);
    Answer(*step, a, sent, kUnavailable, true);
    const Clock::duration delay = step->NextWake() - clock_.Now();
    EXPECT_EQ(delay, Jitter(seed).Next(policy.backoff, 1));
    EXPECT_GE(delay, milliseconds(40));
    EXPECT_LE(delay, milliseconds(60));
    delays.push_back(delay);
  }
  EXPECT_NE(delays[0], delays[1]);
}

TEST_F(LoadStepTest, RetriesAreCountedRequests) {
  // With `requests`, a retry is one of them; once all are sent, a retry that
  // comes due is dropped.
  const StepPolicy policy = BackoffOnly(3);
  Jitter jitter(policy.jitter_seed);
  std::unique_ptr<Step> step = MakeStep(true, 2, 1.0, policy);
  step->EnterMeasure(t0_);
  const Ticket a = Claim(*step);
  Answer(*step, a, t0_, kUnavailable, true);
  const Clock::time_point due = t0_ + jitter.Next(policy.backoff, 1);
  std::vector<Ticket> retries = step->ClaimDueRetries(due, false);
  ASSERT_EQ(retries.size(), 1u);
  EXPECT_TRUE(retries[0].counted);
  EXPECT_FALSE(step->Claim(0, false).has_value());  // 2 of 2 sent
  clock_.AdvanceTo(due);
  Answer(*step, retries[0], due, kUnavailable, true);
  EXPECT_FALSE(step->Idle());  // the retry waits out its backoff...
  const Clock::time_point due2 = due + jitter.Next(policy.backoff, 2);
  EXPECT_EQ(step->NextWake(), due2);
  EXPECT_TRUE(step->ClaimDueRetries(due2, false).empty());  // ...for nothing
  EXPECT_TRUE(step->Idle());
  const StepResult result = Fill(*step);
  EXPECT_EQ(result.requests, 2);
  EXPECT_THAT(result.errors_by_code, ElementsAre(Pair("UNAVAILABLE", 2)));
}

TEST_F(LoadStepTest, RetriesAreDroppedWhenDraining) {
  std::unique_ptr<Step> step = MakeStep(true, 0, 100.0, BackoffOnly(5));
  step->EnterMeasure(t0_);
  const Ticket a = Claim(*step);
  const Ticket b = Claim(*step);
  Answer(*step, a, t0_, kUnavailable, true);
  EXPECT_NE(step->NextWake(), Clock::time_point::max());
  step->EnterDrain(StopReason::kFinished);
  EXPECT_EQ(step->NextWake(), Clock::time_point::max());
  EXPECT_TRUE(step->ClaimDueRetries(Clock::time_point::max(), false).empty());
  // Nor is one queued for an answer while draining.
  Answer(*step, b, t0_, kUnavailable, true);
  EXPECT_TRUE(step->Idle());
}

TEST_F(LoadStepTest, OpenLoopGateHoldsArrivalsBackUntilTheBackoffEnds) {
  const StepPolicy policy = BackoffOnly(7);
  Jitter jitter(policy.jitter_seed);
  std::unique_ptr<Step> step = MakeStep(false, 0, 100.0, policy);
  step->EnterMeasure(t0_);
  const std::optional<Ticket> a = Arrive(*step);
  const std::optional<Ticket> b = Arrive(*step);
  ASSERT_TRUE(a.has_value() && b.has_value());

  // The first UNAVAILABLE closes the gate for the first backoff.
  clock_.Advance(milliseconds(1));
  Answer(*step, *a, t0_, kUnavailable);
  const Clock::time_point gate = clock_.Now() + jitter.Next(policy.backoff, 1);
  EXPECT_FALSE(Arrive(*step).has_value());
  // Answers inside the gate neither extend it nor draw a jitter.
  clock_.Advance(milliseconds(1));
  Answer(*step, *b, t0_, kUnavailable);
  const std::optional<Ticket> c = Arrive(*step);
  EXPECT_FALSE(c.has_value());
  clock_.AdvanceTo(gate - kTick);
  EXPECT_FALSE(Arrive(*step).has_value());
  // Open at the backoff's end exactly.
  clock_.AdvanceTo(gate);
  std::optional<Ticket> d = Arrive(*step);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(Fill(*step).held_back, 3);

  // UNAVAILABLE after the gate opened: closed again, for the second delay
  // of the schedule with the second draw.
  clock_.Advance(milliseconds(1));
  Answer(*step, *d, gate, kUnavailable);
  const Clock::time_point gate2 = clock_.Now() + jitter.Next(policy.backoff, 2);
  clock_.AdvanceTo(gate2 - kTick);
  EXPECT_FALSE(Arrive(*step).has_value());
  clock_.AdvanceTo(gate2);
  const std::optional<Ticket> e = Arrive(*step);
  ASSERT_TRUE(e.has_value());

  // A success resets the schedule: the next UNAVAILABLE closes the gate for
  // the first delay again.
  const std::optional<Ticket> f = Arrive(*step);
  ASSERT_TRUE(f.has_value());
  clock_.Advance(milliseconds(1));
  Answer(*step, *e, gate2, kOk);
  clock_.Advance(milliseconds(1));
  Answer(*step, *f, gate2, kUnavailable);
  const Clock::time_point gate3 = clock_.Now() + jitter.Next(policy.backoff, 1);
  clock_.AdvanceTo(gate3 - kTick);
  EXPECT_FALSE(Arrive(*step).has_value());
  clock_.AdvanceTo(gate3);
  EXPECT_TRUE(Arrive(*step).has_value());

  const StepResult result = Fill(*step);
  EXPECT_EQ(result.held_back, 5);
  EXPECT_EQ(result.dropped, 5);
  EXPECT_EQ(result.late, 0);
  EXPECT_THAT(result.errors_by_code, ElementsAre(Pair("UNAVAILABLE", 4)));
}

TEST_F(LoadStepTest, OpenLoopSuccessInsideTheGateDoesNotOpenIt) {
  const StepPolicy policy = BackoffOnly(9);
  Jitter jitter(policy.jitter_seed);
  std::unique_ptr<Step> step = MakeStep(false, 0, 100.0, policy);
  step->EnterMeasure(t0_);
  const std::optional<Ticket> a = Arrive(*step);
  const std::optional<Ticket> b = Arrive(*step);
  ASSERT_TRUE(a.has_value() && b.has_value());
  Answer(*step, *a, t0_, kUnavailable);
  const Clock::time_point gate = t0_ + jitter.Next(policy.backoff, 1);
  clock_.Advance(milliseconds(1));
  Answer(*step, *b, t0_, kOk);
  clock_.AdvanceTo(gate - kTick);
  EXPECT_FALSE(Arrive(*step).has_value());  // still closed
  clock_.AdvanceTo(gate);
  const std::optional<Ticket> c = Arrive(*step);
  ASSERT_TRUE(c.has_value());
  // But the success reset the schedule: the next gate is the first delay.
  Answer(*step, *c, gate, kUnavailable);
  const Clock::time_point gate2 = gate + jitter.Next(policy.backoff, 1);
  clock_.AdvanceTo(gate2 - kTick);
  EXPECT_FALSE(Arrive(*step).has_value());
  clock_.AdvanceTo(gate2);
  EXPECT_TRUE(Arrive(*step).has_value());
  EXPECT_EQ(Fill(*step).held_back, 2);
}

TEST_F(LoadStepTest, OpenLoopGateInTheWarmupDropsUncounted) {
  const StepPolicy policy = BackoffOnly(8);
  Jitter jitter(policy.jitter_seed);
  std::unique_ptr<Step> step = MakeStep(false, 2, 100.0, policy);
  const std::optional<Ticket> a = Arrive(*step);
  ASSERT_TRUE(a.has_value());
  clock_.Advance(milliseconds(1));
  Answer(*step, *a, t0_, kUnavailable);  // the warm-up closes the gate too
  const Clock::time_point gate = clock_.Now() + jitter.Next(policy.backoff, 1);
  EXPECT_FALSE(Arrive(*step).has_value());
  EXPECT_EQ(Fill(*step).dropped, 0);
  // Measuring, with `requests`: an arrival held back is one of them.
  step->EnterMeasure(clock_.Now());
  EXPECT_FALSE(Arrive(*step).has_value());
  EXPECT_FALSE(step->AllCountedArrived());
  clock_.AdvanceTo(gate);
  const std::optional<Ticket> b = Arrive(*step);
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(b->counted);
  EXPECT_TRUE(step->AllCountedArrived());
  const StepResult result = Fill(*step);
  EXPECT_EQ(result.dropped, 1);
  EXPECT_EQ(result.held_back, 1);
}

TEST_F(LoadStepTest, OpenLoopMaxInFlightDropsAreNotHeldBack) {
  std::unique_ptr<Step> step = MakeStep(false, 0, 100.0);
  step->EnterMeasure(t0_);
  const std::optional<Ticket> a = Arrive(*step, 2);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(Arrive(*step, 2).has_value());
  EXPECT_FALSE(Arrive(*step, 2).has_value());
  // Late arrivals count as late whether sent or dropped.
  EXPECT_FALSE(step->ClaimScheduled(0, false, 2, /*late=*/true).has_value());
  clock_.Advance(milliseconds(1));
  Answer(*step, *a, t0_, kOk);
  EXPECT_TRUE(step->ClaimScheduled(0, false, 2, /*late=*/true).has_value());
  const StepResult result = Fill(*step);
  EXPECT_EQ(result.dropped, 2);
  EXPECT_EQ(result.held_back, 0);
  EXPECT_EQ(result.late, 2);
}

TEST_F(LoadStepTest, ServerGoneOnlyAfterUnavailableAloneForGoneAfter) {
  StepPolicy policy;
  policy.gone_after = milliseconds(500);
  std::unique_ptr<Step> step = MakeStep(true, 0, 100.0, policy);
  step->EnterMeasure(t0_);
  const Ticket a = Claim(*step);
  const Ticket b = Claim(*step);
  const Ticket c = Claim(*step);
  clock_.AdvanceTo(t0_ + milliseconds(10));
  step->Record(a, t0_, {false, "UNAVAILABLE", "Socket closed"}, false, false);
  clock_.AdvanceTo(t0_ + milliseconds(20));
  Answer(*step, b, t0_, kUnavailable);
  // Two answers are no proof, however long the silence after them.
  EXPECT_EQ(step->NextWake(), Clock::time_point::max());
  EXPECT_FALSE(step->CheckGone(t0_ + hours(1)));
  clock_.AdvanceTo(t0_ + milliseconds(30));
  Answer(*step, c, t0_, kUnavailable);
  // Three: gone_after from the first.
  const Clock::time_point decision = t0_ + milliseconds(510);
  EXPECT_EQ(step->NextWake(), decision);
  EXPECT_FALSE(step->CheckGone(decision - kTick));
  EXPECT_FALSE(step->gone().has_value());
  clock_.AdvanceTo(decision - kTick);
  const Ticket d = Claim(*step);  // still sending
  EXPECT_TRUE(step->CheckGone(decision));
  ASSERT_TRUE(step->gone().has_value());
  EXPECT_EQ(step->gone()->since, t0_ + milliseconds(10));
  EXPECT_EQ(step->gone()->message, "Socket closed");
  EXPECT_TRUE(step->CheckGone(decision - kTick));  // once true, stays true
  EXPECT_FALSE(step->Claim(0, false).has_value());
  EXPECT_EQ(step->NextWake(), Clock::time_point::max());
  clock_.AdvanceTo(decision);
  // Nothing is retried for a server gone.
  Answer(*step, d, decision - kTick, kUnavailable, true);
  EXPECT_TRUE(step->Idle());
  const StepResult result = Fill(*step);
  EXPECT_TRUE(result.server_gone);
  EXPECT_EQ(result.server_gone_error, "Socket closed");
  EXPECT_THAT(result.errors_by_code, ElementsAre(Pair("UNAVAILABLE", 4)));
}

TEST_F(LoadStepTest, AnyOtherAnswerRestartsTheGoneClock) {
  StepPolicy policy;
  policy.gone_after = milliseconds(500);
  std::unique_ptr<Step> step = MakeStep(true, 0, 100.0, policy);
  step->EnterMeasure(t0_);
  std::vector<Ticket> tickets;
  for (int i = 0; i < 6; ++i) tickets.push_back(Claim(*step));
  for (int i = 0; i < 6; ++i) {
    clock_.AdvanceTo(t0_ + milliseconds(10 * (i + 1)));
    // The third answer is another error: the streak starts again after it.
    Answer(*step, tickets[i], t0_, i == 2 ? kInvalid : kUnavailable);
  }
  // UNAVAILABLE at 40, 50 and 60 ms: decided at 40 + 500 ms.
  const Clock::time_point decision = t0_ + milliseconds(540);
  EXPECT_EQ(step->NextWake(), decision);
  EXPECT_FALSE(step->CheckGone(decision - kTick));
  EXPECT_TRUE(step->CheckGone(decision));
  EXPECT_EQ(step->gone()->since, t0_ + milliseconds(40));
}

TEST_F(LoadStepTest, AnUnavailableAnswerPastGoneAfterDecidesAtOnce) {
  StepPolicy policy;
  policy.gone_after = milliseconds(500);
  std::unique_ptr<Step> step = MakeStep(true, 0, 100.0, policy);
  step->EnterMeasure(t0_);
  const Ticket a = Claim(*step);
  const Ticket b = Claim(*step);
  const Ticket c = Claim(*step);
  Answer(*step, a, t0_, kUnavailable);
  Answer(*step, b, t0_, kUnavailable);
  clock_.AdvanceTo(t0_ + milliseconds(600));
  // The third answer completes a streak already 600 ms long: gone, with no
  // CheckGone, and no retry queued.
  Answer(*step, c, t0_, kUnavailable, true);
  ASSERT_TRUE(step->gone().has_value());
  EXPECT_EQ(step->gone()->since, t0_);
  EXPECT_TRUE(step->Idle());
}

TEST_F(LoadStepTest, GoneIsNotJudgedWhileDraining) {
  StepPolicy policy;
  policy.gone_after = milliseconds(500);
  std::unique_ptr<Step> step = MakeStep(true, 0, 100.0, policy);
  step->EnterMeasure(t0_);
  const Ticket a = Claim(*step);
  const Ticket b = Claim(*step);
  const Ticket c = Claim(*step);
  Answer(*step, a, t0_, kUnavailable);
  Answer(*step, b, t0_, kUnavailable);
  step->EnterDrain(StopReason::kFinished);
  Answer(*step, c, t0_, kUnavailable);
  EXPECT_FALSE(step->CheckGone(t0_ + hours(1)));
  EXPECT_FALSE(Fill(*step).server_gone);
}

TEST_F(LoadStepTest, RequestsModeWindowEndsWhenTheGoneServerIsNoticed) {
  StepPolicy policy;
  policy.gone_after = milliseconds(500);
  std::unique_ptr<Step> step = MakeStep(true, 100, 1.0, policy);
  step->EnterMeasure(t0_);
  const Ticket a = Claim(*step);
  const Ticket b = Claim(*step);
  const Ticket c = Claim(*step);
  for (const Ticket& ticket : {a, b, c}) {
    clock_.Advance(milliseconds(10));
    Answer(*step, ticket, t0_, kUnavailable);
  }
  // The driver looks at 700 ms (the decision was due at 510 ms).
  clock_.AdvanceTo(t0_ + milliseconds(700));
  ASSERT_TRUE(step->CheckGone(clock_.Now()));
  step->EnterDrain(StopReason::kServerGone);
  const StepResult result = Fill(*step);
  EXPECT_TRUE(result.server_gone);
  EXPECT_DOUBLE_EQ(result.seconds, 0.7);
  EXPECT_EQ(result.requests, 3);
}

TEST_F(LoadStepTest, NextWakeIsTheEarliestRetryOrGoneDecision) {
  // Retries before the decision: the earliest retry, then the next.
  {
    StepPolicy policy;
    policy.gone_after = seconds(10);
    policy.jitter_seed = 11;
    Jitter jitter(policy.jitter_seed);
    const Clock::time_point start = clock_.Now();
    std::unique_ptr<Step> step = MakeStep(true, 0, 100.0, policy);
    step->EnterMeasure(start);
    EXPECT_EQ(step->NextWake(), Clock::time_point::max());
    std::vector<Ticket> slots;
    for (int i = 0; i < 3; ++i) slots.push_back(Claim(*step, i));
    std::vector<Clock::time_point> due;
    for (int i = 0; i < 3; ++i) {
      clock_.AdvanceTo(start + milliseconds(i));
      Answer(*step, slots[i], start, kUnavailable, true);
      due.push_back(clock_.Now() + jitter.Next(policy.backoff, 1));
      EXPECT_EQ(step->NextWake(), *std::min_element(due.begin(), due.end()))
          << i;
    }
    std::sort(due.begin(), due.end());
    EXPECT_EQ(step->ClaimDueRetries(due[0], false).size(), 1u);
    EXPECT_EQ(step->NextWake(), due[1]);
    EXPECT_EQ(step->ClaimDueRetries(due[2], false).size(), 2u);
    EXPECT_EQ(step->NextWake(), start + seconds(10));  // the decision
    step->EnterDrain(StopReason::kFinished);
    EXPECT_EQ(step->NextWake(), Clock::time_point::max());
  }
  // The decision before any retry (gone_after below the shortest backoff,
  // 40 ms).
  {
    StepPolicy policy;
    policy.gone_after = milliseconds(30);
    const Clock::time_point start = clock_.Now();
    std::unique_ptr<Step> step = MakeStep(true, 0, 100.0, policy);
    step->EnterMeasure(start);
    std::vector<Ticket> slots;
    for (int i = 0; i < 3; ++i) slots.push_back(Claim(*step, i));
    for (int i = 0; i < 3; ++i) {
      clock_.AdvanceTo(start + milliseconds(i));
      Answer(*step, slots[i], start, kUnavailable, true);
    }
    EXPECT_EQ(step->NextWake(), start + milliseconds(30));
    EXPECT_TRUE(step->CheckGone(start + milliseconds(30)));
    EXPECT_EQ(step->NextWake(), Clock::time_point::max());
  }
}

// Step::WaitUntil on its own thread, with a flag set when it returns.
class Waiter {
 public:
  Waiter(Step& step, Clock::time_point when, bool until_idle)
      : thread_([this, &step, when, until_idle] {
          step.WaitUntil(when, until_idle);
          returned_ = true;
        }) {}
  ~Waiter() { Join(); }
  bool returned() const { return returned_; }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> returned_{false};
  std::thread thread_;
};

TEST_F(LoadStepTest, WaitUntilReturnsWhenTheFakeTimeReachesIt) {
  std::unique_ptr<Step> step = MakeStep(true, 0, 100.0);
  step->EnterMeasure(t0_);
  {
    Waiter waiter(*step, t0_ + milliseconds(100), /*until_idle=*/false);
    ASSERT_TRUE(clock_.AwaitWaiters(1));
    clock_.Advance(milliseconds(99));
    EXPECT_FALSE(waiter.returned());  // it saw 99 ms and blocked again
    clock_.Advance(milliseconds(1) - kTick);
    EXPECT_FALSE(waiter.returned());
    clock_.Advance(kTick);
    waiter.Join();
    EXPECT_TRUE(waiter.returned());
  }
  // A time already past, or nothing left with until_idle: at once.
  step->WaitUntil(t0_, false);
  step->WaitUntil(Clock::time_point::max(), true);
  EXPECT_EQ(clock_.waiters(), 0u);
}

TEST_F(LoadStepTest, WaitUntilWakesEarlyForARetryTheGoneDecisionOrIdle) {
  StepPolicy policy;
  policy.gone_after = seconds(1);
  std::unique_ptr<Step> step = MakeStep(true, 0, 100.0, policy);
  step->EnterMeasure(t0_);
  const Clock::time_point far = t0_ + seconds(10);
  // A retry queued, due before the wait's end: the driver must recompute.
  {
    const Ticket a = Claim(*step);
    Waiter waiter(*step, far, false);
    ASSERT_TRUE(clock_.AwaitWaiters(1));
    Answer(*step, a, t0_, kUnavailable, /*replace=*/true);
    waiter.Join();
    step->ClaimDueRetries(Clock::time_point::max(), false);
  }
  // The streak reaching three answers: the decision (t0 + 1 s) comes first.
  {
    const Ticket b = Claim(*step);
    const Ticket c = Claim(*step);
    Waiter waiter(*step, far, false);
    ASSERT_TRUE(clock_.AwaitWaiters(1));
    Answer(*step, b, t0_, kUnavailable);
    EXPECT_FALSE(waiter.returned());  // two answers: nothing decided
    Answer(*step, c, t0_, kUnavailable);
    waiter.Join();
  }
  EXPECT_EQ(clock_.Now(), t0_);  // no fake time passed
  // The last call done, with until_idle.
  {
    std::unique_ptr<Step> idle = MakeStep(true, 0, 100.0);
    idle->EnterMeasure(t0_);
    std::optional<Ticket> d = idle->Claim(0, /*new_reactor=*/true);
    ASSERT_TRUE(d.has_value());
    Waiter waiter(*idle, far, /*until_idle=*/true);
    ASSERT_TRUE(clock_.AwaitWaiters(1));
    Answer(*idle, *d, t0_, kOk);
    EXPECT_FALSE(waiter.returned());  // answered, but the call not done
    idle->ReactorDone();
    waiter.Join();
  }
  EXPECT_EQ(clock_.Now(), t0_);
}

// The Driver's open loop on the fake clock, against the fake server: each
// arrival leaves when the fake time reaches its due time, never before and
// never late.
class LoadDriverClockTest : public testing::LoadGeneratorTest {
 protected:
  std::shared_ptr<Transport> Connect() {
    auto transport = std::make_shared<Transport>();
    transport->timeout = seconds(5);
    ChannelOptions channel;
    channel.http_proxy = false;
    transport->channels.push_back(
        CreateClientChannel("127.0.0.1:" + std::to_string(port_), channel));
    transport->stubs.push_back(
        std::make_unique<grpc::GenericStub>(transport->channels.back()));
    inference::ModelInferRequest request;
    request.set_model_name("linear_relu");
    auto* x = request.add_inputs();
    x->set_name("x");
    x->set_datatype("FP32");
    x->add_shape(1);
    x->add_shape(testing::kK);
    request.add_raw_input_contents(std::string(4 * testing::kK, '\0'));
    transport->body = grpc::Slice(request.SerializeAsString());
    transport->expected_outputs = 1;
    return transport;
  }

  // Runs one open-loop step at `rate` on `clock_`, moving the fake time to
  // each arrival's due time once the driver waits for it, `arrivals` of
  // them (the first is due at once).
  StepResult RunOpenLoop(const LoadOptions& options, double rate,
                         int arrivals) {
    const Clock::time_point start = clock_.Now();
    Driver driver(options, Connect(), start + seconds(60), progress_, 1,
                  clock_);
    absl::StatusOr<StepResult> result;
    std::thread run([&] { result = driver.RunStep(0, true, rate); });
    ArrivalSchedule schedule(options.arrivals, rate, options.seed * 1000003u);
    schedule.Next();
    for (int i = 1; i < arrivals; ++i) {
      const Clock::time_point due = start + FromSeconds(schedule.Next());
      EXPECT_TRUE(clock_.AwaitWaiters(1)) << i;
      clock_.AdvanceTo(due);
    }
    run.join();
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : StepResult{};
  }

  FakeClock clock_;
  const LoadGenerator::ProgressCallback progress_;
};

TEST_F(LoadDriverClockTest, OpenLoopForADurationSendsEachArrivalOnTime) {
  LoadOptions options = Options();
  options.arrivals = Arrivals::kConstant;
  options.duration_s = 0.1;
  const Clock::time_point start = clock_.Now();
  // 100/s for 0.1 s: arrivals at 0, 10, ..., 90 ms; the one at 100 ms is
  // past the window, so the fake time never goes beyond 90 ms.
  const StepResult result = RunOpenLoop(options, 100, 10);
  EXPECT_EQ(clock_.Now(), start + FromSeconds(0.09));
  EXPECT_DOUBLE_EQ(result.seconds, 0.1);
  EXPECT_EQ(result.requests, 10);
  EXPECT_EQ(result.successes, 10);
  EXPECT_EQ(result.dropped, 0);
  EXPECT_EQ(result.late, 0);
  EXPECT_EQ(service_.infer_calls, 10);
}

TEST_F(LoadDriverClockTest, OpenLoopWarmupEndsOnTheFakeSchedule) {
  // 50 ms of warm-up at 100/s: 5 arrivals uncounted, then the 10 requests,
  // measured from 50 ms to the last answer (at 140 ms, when the fake time
  // stops).
  LoadOptions options = Options();
  options.arrivals = Arrivals::kConstant;
  options.warmup_s = 0.05;
  options.requests = 10;
  const Clock::time_point start = clock_.Now();
  const StepResult result = RunOpenLoop(options, 100, 15);
  EXPECT_EQ(clock_.Now(), start + FromSeconds(0.14));
  EXPECT_EQ(result.requests, 10);
  EXPECT_EQ(result.successes, 10);
  EXPECT_EQ(result.late, 0);
  EXPECT_DOUBLE_EQ(result.seconds, 0.09);
  EXPECT_EQ(service_.infer_calls, 15);
}

}  // namespace
}  // namespace reluserve
