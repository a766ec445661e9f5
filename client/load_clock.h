// Inside reluserve-load: where the load generator's time comes from. The
// Step, its calls and the Driver read the present and wait through a
// LoadClock, so that tests can check the timing rules on a fake clock
// (tests/support/load_testing.h) instead of sleeping. Not part of the
// library's interface (namespace load_internal).

#ifndef RELUSERVE_CLIENT_LOAD_CLOCK_H_
#define RELUSERVE_CLIENT_LOAD_CLOCK_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace reluserve::load_internal {

using Clock = std::chrono::steady_clock;

// Thread safety: both methods may be called from any number of threads at
// once (the driver's and gRPC's callback threads). WaitUntil takes no lock
// of its caller's but `lock`; an implementation's own locks are never held
// while it calls `done`.
class LoadClock {
 public:
  virtual ~LoadClock() = default;

  // The present.
  virtual Clock::time_point Now() const = 0;

  // With `lock` held on the mutex that guards `cv`'s state: blocks until
  // `done()` or until Now() reaches `when`, checking `done()` again whenever
  // `cv` is notified. `done` runs with `lock` held. `lock` is held on return,
  // though it may have been released meanwhile, as by any wait.
  virtual void WaitUntil(std::unique_lock<std::mutex>& lock,
                         std::condition_variable& cv, Clock::time_point when,
                         const std::function<bool()>& done) const = 0;

  // steady_clock and the condition variable's timed wait: the default.
  static const LoadClock& Real();
};

namespace clock_internal {

class RealClock final : public LoadClock {
 public:
  Clock::time_point Now() const override { return Clock::now(); }
  void WaitUntil(std::unique_lock<std::mutex>& lock,
                 std::condition_variable& cv, Clock::time_point when,
                 const std::function<bool()>& done) const override {
    cv.wait_until(lock, when, std::cref(done));
  }
};

}  // namespace clock_internal

inline const LoadClock& LoadClock::Real() {
  static const clock_internal::RealClock clock;
  return clock;
}

}  // namespace reluserve::load_internal

#endif  // RELUSERVE_CLIENT_LOAD_CLOCK_H_
