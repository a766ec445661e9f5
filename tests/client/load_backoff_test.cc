// The backoff schedule after UNAVAILABLE and the rule that the server went
// away: pure functions of the attempt, a uniform number and the times passed
// in, so these tests never sleep.

#include "client/load_backoff.h"

#include <chrono>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reluserve {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using Clock = UnavailableStreak::Clock;

constexpr double kMiddle = 0.5;  // no jitter

TEST(LoadBackoffTest, GrowsByTheMultiplierFromTheInitialDelay) {
  const BackoffPolicy policy;  // 50 ms, x1.6, at most 1 s, +-20%
  std::vector<int64_t> us;
  for (int attempt = 1; attempt <= 8; ++attempt) {
    us.push_back(BackoffDelay(policy, attempt, kMiddle).count());
  }
  EXPECT_THAT(us, testing::ElementsAre(50000, 80000, 128000, 204800, 327680,
                                       524288, 838861, 1000000));
}

TEST(LoadBackoffTest, StopsAtTheCapForever) {
  const BackoffPolicy policy;
  for (int attempt : {8, 9, 20, 100, 10000, 1 << 30}) {
    EXPECT_EQ(BackoffDelay(policy, attempt, kMiddle), milliseconds(1000))
        << attempt;
  }
}

TEST(LoadBackoffTest, AttemptsBelowOneCountAsTheFirst) {
  const BackoffPolicy policy;
  EXPECT_EQ(BackoffDelay(policy, 0, kMiddle), milliseconds(50));
  EXPECT_EQ(BackoffDelay(policy, -3, kMiddle), milliseconds(50));
}

TEST(LoadBackoffTest, JitterSpreadsTwentyPercentEitherWay) {
  const BackoffPolicy policy;
  EXPECT_EQ(BackoffDelay(policy, 1, 0.0), milliseconds(40));
  EXPECT_EQ(BackoffDelay(policy, 1, 0.25), milliseconds(45));
  EXPECT_EQ(BackoffDelay(policy, 1, 0.75), milliseconds(55));
  EXPECT_EQ(BackoffDelay(policy, 1, 1.0), milliseconds(60));
  // Also at the cap: the cap is the band's middle.
  EXPECT_EQ(BackoffDelay(policy, 50, 0.0), milliseconds(800));
  EXPECT_EQ(BackoffDelay(policy, 50, 1.0), milliseconds(1200));
  // Out-of-range uniforms are clamped, never negative or huge.
  EXPECT_EQ(BackoffDelay(policy, 1, -7.0), milliseconds(40));
  EXPECT_EQ(BackoffDelay(policy, 1, 7.0), milliseconds(60));
}

TEST(LoadBackoffTest, EveryDelayIsInsideItsBand) {
  const BackoffPolicy policy;
  for (int attempt = 1; attempt <= 12; ++attempt) {
    const double middle_us =
        static_cast<double>(BackoffDelay(policy, attempt, kMiddle).count());
    for (int i = 0; i <= 100; ++i) {
      const double u = i / 100.0;
      const double us =
          static_cast<double>(BackoffDelay(policy, attempt, u).count());
      EXPECT_GE(us, 0.8 * middle_us - 1) << attempt << " " << u;
      EXPECT_LE(us, 1.2 * middle_us + 1) << attempt << " " << u;
    }
  }
}

TEST(LoadBackoffTest, OtherPolicies) {
  BackoffPolicy doubling;
  doubling.initial = milliseconds(50);
  doubling.multiplier = 2;
  doubling.max = milliseconds(2000);
  doubling.jitter = 0;
  std::vector<int64_t> ms;
  for (int attempt = 1; attempt <= 8; ++attempt) {
    ms.push_back(std::chrono::duration_cast<milliseconds>(
                     BackoffDelay(doubling, attempt, 0.0))
                     .count());
  }
  EXPECT_THAT(ms,
              testing::ElementsAre(50, 100, 200, 400, 800, 1600, 2000, 2000));
  BackoffPolicy constant;
  constant.multiplier = 1;
  constant.jitter = 0;
  EXPECT_EQ(BackoffDelay(constant, 30, 0.9), milliseconds(50));
}

TEST(LoadBackoffTest, ADeadServerGetsFewRequestsPerSlot) {
  // What the issue was about: per in-flight slot, how many requests a dead
  // server gets in the 1.5 s before it is declared gone, with the shortest
  // delays the jitter allows.
  const BackoffPolicy policy;
  microseconds elapsed{0};
  int requests = 1;  // the one whose UNAVAILABLE began the streak
  for (int attempt = 1; elapsed < milliseconds(1500); ++attempt) {
    elapsed += BackoffDelay(policy, attempt, 0.0);
    if (elapsed < milliseconds(1500)) ++requests;
  }
  EXPECT_EQ(requests, 7);
}

Clock::time_point At(int ms) { return Clock::time_point() + milliseconds(ms); }

TEST(LoadUnavailableStreakTest, GoneAfterOnlyUnavailableForTheWholeSpan) {
  UnavailableStreak streak(milliseconds(1500), 3);
  EXPECT_FALSE(streak.active());
  EXPECT_EQ(streak.decision_time(), Clock::time_point::max());
  streak.Observe(true, At(1000), "Socket closed");
  streak.Observe(true, At(1050), "connection refused");
  EXPECT_EQ(streak.decision_time(), Clock::time_point::max());  // 2 < 3
  streak.Observe(true, At(1130));
  EXPECT_EQ(streak.decision_time(), At(2500));
  EXPECT_FALSE(streak.Gone(At(2499)));
  EXPECT_TRUE(streak.Gone(At(2500)));
  EXPECT_TRUE(streak.Gone(At(9000)));
  EXPECT_EQ(streak.since(), At(1000));
  EXPECT_EQ(streak.count(), 3);
  EXPECT_EQ(streak.first_message(), "Socket closed");
}

TEST(LoadUnavailableStreakTest, AnyOtherAnswerEndsTheStreak) {
  UnavailableStreak streak(milliseconds(1500), 3);
  for (int t = 0; t < 1400; t += 100) streak.Observe(true, At(t), "down");
  streak.Observe(false, At(1450));  // a success, or another error
  EXPECT_FALSE(streak.active());
  EXPECT_FALSE(streak.Gone(At(5000)));
  EXPECT_EQ(streak.decision_time(), Clock::time_point::max());
  // A new streak counts from its own first answer.
  for (int t = 2000; t <= 2200; t += 100) streak.Observe(true, At(t), "again");
  EXPECT_EQ(streak.since(), At(2000));
  EXPECT_EQ(streak.first_message(), "again");
  EXPECT_FALSE(streak.Gone(At(3499)));
  EXPECT_TRUE(streak.Gone(At(3500)));
}

TEST(LoadUnavailableStreakTest, OneLateUnavailableIsNotEnough) {
  // A single UNAVAILABLE followed by silence (calls slow, not failing) is
  // no proof; it takes min_answers of them.
  UnavailableStreak streak(milliseconds(1500), 3);
  streak.Observe(true, At(0));
  EXPECT_FALSE(streak.Gone(At(60000)));
  streak.Observe(true, At(60000));
  EXPECT_FALSE(streak.Gone(At(60000)));
  streak.Observe(true, At(60001));
  EXPECT_TRUE(streak.Gone(At(60001)));
}

}  // namespace
}  // namespace reluserve
