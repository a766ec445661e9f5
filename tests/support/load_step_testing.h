#ifndef RELUSERVE_TESTS_SUPPORT_LOAD_STEP_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_LOAD_STEP_TESTING_H_

// Shared by the load_internal::Step tests on a FakeClock
// (tests/client/load_step_test.cc, load_step_backoff_test.cc): outcomes,
// the step's jitter replayed, and LoadStepTest, a fixture that makes steps
// on the fake clock and claims, answers and fills them.

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>

#include "client/load_backoff.h"
#include "client/load_generator.h"
#include "client/load_step.h"
#include "tests/support/load_testing.h"

namespace reluserve::load_step_testing {

using load_internal::Clock;
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

inline const Outcome kOk{};
inline const Outcome kUnavailable{false, "UNAVAILABLE", "shutting down"};
inline const Outcome kInvalid{false, "INVALID_ARGUMENT", "bad input"};

inline constexpr nanoseconds kTick{1};  // the clock's resolution
inline constexpr int kMaxInFlight = 100;

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
inline StepPolicy BackoffOnly(uint64_t seed) {
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

}  // namespace reluserve::load_step_testing

#endif  // RELUSERVE_TESTS_SUPPORT_LOAD_STEP_TESTING_H_
