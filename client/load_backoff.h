// reluserve-load's reaction to UNAVAILABLE: an exponential backoff schedule
// like gRPC's retry and reconnect policies, and the rule that decides the
// server went away. Pure arithmetic on times passed in: no clock, no sleep.

#ifndef RELUSERVE_CLIENT_LOAD_BACKOFF_H_
#define RELUSERVE_CLIENT_LOAD_BACKOFF_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace reluserve {

// Delay before the n-th consecutive retry after UNAVAILABLE answers:
// initial * multiplier^(n-1), at most `max`, then spread by +-jitter.
struct BackoffPolicy {
  std::chrono::milliseconds initial{50};
  double multiplier = 1.6;
  std::chrono::milliseconds max{1000};
  double jitter = 0.2;  // fraction of the delay, either way
};

// The delay before retry number `attempt` (1 = after the first UNAVAILABLE
// answer; values below 1 count as 1). `uniform` in [0, 1) picks the point
// inside the jitter band: 0.5 is the band's middle, the unjittered delay.
std::chrono::microseconds BackoffDelay(const BackoffPolicy& policy, int attempt,
                                       double uniform);

// Decides that the server went away: every answer for `gone_after` was
// UNAVAILABLE (at least `min_answers` of them), with nothing else in
// between. Any other answer, success or error, ends the streak.
//
// Thread safety: none; the caller serialises access.
class UnavailableStreak {
 public:
  using Clock = std::chrono::steady_clock;

  explicit UnavailableStreak(
      Clock::duration gone_after = std::chrono::milliseconds(1500),
      int64_t min_answers = 3)
      : gone_after_(gone_after), min_answers_(min_answers) {}

  // An answer arrived at `when`; `message` is kept for the first UNAVAILABLE
  // of a streak.
  void Observe(bool unavailable, Clock::time_point when,
               const std::string& message = "");

  // True once the streak has lasted `gone_after` by `now`, which may be
  // later than the last answer (calls backing off answer seldom).
  bool Gone(Clock::time_point now) const;

  bool active() const { return count_ > 0; }
  // When the streak began (the first UNAVAILABLE answer): the moment the
  // server went away, as far as the client can tell.
  Clock::time_point since() const { return since_; }
  int64_t count() const { return count_; }
  const std::string& first_message() const { return first_message_; }
  // When Gone() becomes true, once the streak has `min_answers` answers;
  // max() before (only another answer can make it true then).
  Clock::time_point decision_time() const;

 private:
  const Clock::duration gone_after_;
  const int64_t min_answers_;
  Clock::time_point since_;
  int64_t count_ = 0;
  std::string first_message_;
};

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_LOAD_BACKOFF_H_
