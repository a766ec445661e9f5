#include "client/stats.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace reluserve {
namespace {

TEST(SummarizeTest, CountsZerosAndSkipsNaN) {
  const TensorSummary summary =
      Summarize({0.0f, -0.0f, 2.0f, -1.0f, std::nanf(""), 3.0f});
  EXPECT_EQ(summary.count, 6);
  EXPECT_EQ(summary.nan_count, 1);
  EXPECT_EQ(summary.zero_count, 2);
  EXPECT_DOUBLE_EQ(summary.zero_fraction(), 2.0 / 6.0);
  EXPECT_DOUBLE_EQ(summary.min, -1.0);
  EXPECT_DOUBLE_EQ(summary.max, 3.0);
  EXPECT_DOUBLE_EQ(summary.mean, 0.8);
}

TEST(SummarizeTest, InfinityAndEmpty) {
  const TensorSummary inf =
      Summarize({1.0f, std::numeric_limits<float>::infinity()});
  EXPECT_EQ(inf.inf_count, 1);
  EXPECT_TRUE(std::isinf(inf.max));
  const TensorSummary empty = Summarize({});
  EXPECT_EQ(empty.count, 0);
  EXPECT_EQ(empty.zero_fraction(), 0.0);
  EXPECT_EQ(empty.min, 0.0);
}

TEST(LatencyTest, MatchesNumpyPercentiles) {
  // np.median([5, 1, 4, 2, 3, 10]) == 3.5; np.percentile(..., 90) == 7.5.
  const LatencySummary summary = SummarizeLatencies({5, 1, 4, 2, 3, 10});
  EXPECT_EQ(summary.count, 6);
  EXPECT_DOUBLE_EQ(summary.median, 3.5);
  EXPECT_DOUBLE_EQ(summary.p90, 7.5);
  EXPECT_DOUBLE_EQ(summary.min, 1);
  EXPECT_DOUBLE_EQ(summary.max, 10);
}

TEST(LatencyTest, OneSampleAndNone) {
  const LatencySummary one = SummarizeLatencies({2.5});
  EXPECT_DOUBLE_EQ(one.median, 2.5);
  EXPECT_DOUBLE_EQ(one.p90, 2.5);
  EXPECT_EQ(SummarizeLatencies({}).count, 0);
}

}  // namespace
}  // namespace reluserve
