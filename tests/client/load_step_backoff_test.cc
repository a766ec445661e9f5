// A reluserve-load step after UNAVAILABLE answers, on a FakeClock:
// closed-loop retries due exactly at the seeded backoff, the open-loop gate,
// the server judged gone, NextWake and WaitUntil, to the nanosecond and
// without sleeping.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "client/load_backoff.h"
#include "client/load_step.h"
#include "tests/support/load_step_testing.h"

namespace reluserve {
namespace {

using namespace ::reluserve::load_step_testing;  // NOLINT: the fixture's names
using ::testing::ElementsAre;
using ::testing::Pair;

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

}  // namespace
}  // namespace reluserve
