#include "client/load_backoff.h"

#include <algorithm>
#include <cmath>

namespace reluserve {

std::chrono::microseconds BackoffDelay(const BackoffPolicy& policy, int attempt,
                                       double uniform) {
  const double initial_us =
      std::chrono::duration<double, std::micro>(policy.initial).count();
  const double max_us =
      std::chrono::duration<double, std::micro>(policy.max).count();
  // Past the cap the power only grows: stop before it overflows.
  double base_us = initial_us;
  for (int n = 1; n < attempt && base_us < max_us; ++n) {
    base_us *= policy.multiplier;
  }
  base_us = std::min(base_us, max_us);
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const double u = std::clamp(uniform, 0.0, 1.0);
  const double us = base_us * (1.0 + jitter * (2.0 * u - 1.0));
  return std::chrono::microseconds(static_cast<int64_t>(std::llround(us)));
}

void UnavailableStreak::Observe(bool unavailable, Clock::time_point when,
                                const std::string& message) {
  if (!unavailable) {
    count_ = 0;
    first_message_.clear();
    return;
  }
  if (count_ == 0) {
    since_ = when;
    first_message_ = message;
  }
  ++count_;
}

bool UnavailableStreak::Gone(Clock::time_point now) const {
  return count_ >= min_answers_ && now - since_ >= gone_after_;
}

UnavailableStreak::Clock::time_point UnavailableStreak::decision_time() const {
  return count_ >= min_answers_ ? since_ + gone_after_
                                : Clock::time_point::max();
}

}  // namespace reluserve
