#include "client/load_stats.h"

#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace reluserve {
namespace {

using ::testing::DoubleNear;
using ::testing::HasSubstr;

TEST(LatencyStatsTest, EmptyIsAllZero) {
  const LatencyStats stats = ComputeLatencyStats({});
  EXPECT_EQ(stats.count, 0);
  EXPECT_EQ(stats.p50, 0);
  EXPECT_EQ(stats.max, 0);
}

TEST(LatencyStatsTest, OneSampleIsEveryPercentile) {
  const LatencyStats stats = ComputeLatencyStats({2.5});
  EXPECT_EQ(stats.count, 1);
  for (double value : {stats.min, stats.mean, stats.p50, stats.p90, stats.p95,
                       stats.p99, stats.max}) {
    EXPECT_EQ(value, 2.5);
  }
}

TEST(LatencyStatsTest, InterpolatesLikeNumpy) {
  // 1..100 shuffled: np.percentile(range(1, 101), q) = 1 + 0.99 q.
  std::vector<double> samples;
  for (int i = 100; i >= 1; --i) samples.push_back(i);
  const LatencyStats stats = ComputeLatencyStats(samples);
  EXPECT_EQ(stats.count, 100);
  EXPECT_DOUBLE_EQ(stats.min, 1);
  EXPECT_DOUBLE_EQ(stats.max, 100);
  EXPECT_DOUBLE_EQ(stats.mean, 50.5);
  EXPECT_DOUBLE_EQ(stats.p50, 50.5);
  EXPECT_DOUBLE_EQ(stats.p90, 90.1);
  EXPECT_DOUBLE_EQ(stats.p95, 95.05);
  EXPECT_DOUBLE_EQ(stats.p99, 99.01);
}

TEST(LatencyStatsTest, TailPercentilesSeeOutliers) {
  // 98 fast requests and two slow ones: p50 stays fast, p99 sees them.
  std::vector<double> samples(98, 1.0);
  samples.push_back(50.0);
  samples.push_back(100.0);
  const LatencyStats stats = ComputeLatencyStats(samples);
  EXPECT_DOUBLE_EQ(stats.p50, 1.0);
  EXPECT_DOUBLE_EQ(stats.p95, 1.0);
  // Rank 0.99 * 99 = 98.01: between 50 and 100.
  EXPECT_THAT(stats.p99, DoubleNear(50.5, 1e-9));
  EXPECT_DOUBLE_EQ(stats.max, 100.0);
  EXPECT_LE(stats.p50, stats.p90);
  EXPECT_LE(stats.p90, stats.p95);
  EXPECT_LE(stats.p95, stats.p99);
  EXPECT_LE(stats.p99, stats.max);
}

TEST(ArrivalScheduleTest, ConstantIsExactlyEvenlySpaced) {
  ArrivalSchedule schedule(Arrivals::kConstant, 250.0, 1);
  for (int k = 0; k < 10000; ++k) {
    EXPECT_DOUBLE_EQ(schedule.Next(), k / 250.0) << k;
  }
}

TEST(ArrivalScheduleTest, PoissonHasExponentialGaps) {
  constexpr double kRate = 1000.0;
  constexpr int kCount = 200000;
  ArrivalSchedule schedule(Arrivals::kPoisson, kRate, 7);
  EXPECT_EQ(schedule.Next(), 0.0);
  double previous = 0.0, sum = 0.0, sum_squares = 0.0;
  int below_mean = 0;
  for (int k = 0; k < kCount; ++k) {
    const double next = schedule.Next();
    const double gap = next - previous;
    ASSERT_GT(gap, 0.0) << k;
    sum += gap;
    sum_squares += gap * gap;
    if (gap < 1.0 / kRate) ++below_mean;
    previous = next;
  }
  const double mean = sum / kCount;
  const double stddev = std::sqrt(sum_squares / kCount - mean * mean);
  // Exponential: mean = stddev = 1/rate; P(gap < mean) = 1 - 1/e.
  EXPECT_THAT(mean, DoubleNear(1.0 / kRate, 0.01 / kRate));
  EXPECT_THAT(stddev / mean, DoubleNear(1.0, 0.02));
  EXPECT_THAT(static_cast<double>(below_mean) / kCount,
              DoubleNear(1.0 - std::exp(-1.0), 0.005));
  // About `rate` arrivals per second of schedule.
  EXPECT_THAT(kCount / previous, DoubleNear(kRate, 0.01 * kRate));
}

TEST(ArrivalScheduleTest, PoissonIsDeterministicPerSeed) {
  ArrivalSchedule a(Arrivals::kPoisson, 50.0, 3);
  ArrivalSchedule b(Arrivals::kPoisson, 50.0, 3);
  ArrivalSchedule c(Arrivals::kPoisson, 50.0, 4);
  bool differs = false;
  for (int k = 0; k < 100; ++k) {
    const double next = a.Next();
    EXPECT_EQ(next, b.Next());
    differs = differs || next != c.Next();
  }
  EXPECT_TRUE(differs);
}

inference::ModelStatistics Stats(uint64_t base) {
  inference::ModelStatistics stats;
  stats.set_name("linear_relu");
  stats.set_version("1");
  stats.set_inference_count(base * 100);
  stats.set_execution_count(base);
  auto* infer = stats.mutable_inference_stats();
  auto set = [base](inference::StatisticDuration* d, uint64_t ns_per) {
    d->set_count(base);
    d->set_ns(base * ns_per);
  };
  set(infer->mutable_success(), 9000);
  set(infer->mutable_queue(), 1000);
  set(infer->mutable_compute_input(), 2000);
  set(infer->mutable_compute_infer(), 5000);
  set(infer->mutable_compute_output(), 500);
  infer->mutable_fail()->set_count(base / 10);
  infer->mutable_fail()->set_ns(base / 10 * 300);
  return stats;
}

TEST(StatsDeltaTest, DifferencesAndMeansPerRequest) {
  inference::ModelStatistics before = Stats(10);
  inference::ModelStatistics after = Stats(50);
  // Dynamic batching: 40 requests in 10 executions.
  after.set_execution_count(before.execution_count() + 10);
  absl::StatusOr<ServerStatsDelta> delta = StatsDelta(before, after);
  ASSERT_TRUE(delta.ok()) << delta.status();
  EXPECT_EQ(delta->success.count, 40u);
  EXPECT_EQ(delta->success.ns, 40u * 9000);
  EXPECT_DOUBLE_EQ(delta->success.MeanUs(), 9.0);
  EXPECT_DOUBLE_EQ(delta->queue.MeanUs(), 1.0);
  EXPECT_DOUBLE_EQ(delta->compute_input.MeanUs(), 2.0);
  EXPECT_DOUBLE_EQ(delta->compute_infer.MeanUs(), 5.0);
  EXPECT_DOUBLE_EQ(delta->compute_output.MeanUs(), 0.5);
  EXPECT_EQ(delta->fail.count, 4u);
  EXPECT_DOUBLE_EQ(delta->fail.MeanUs(), 0.3);
  EXPECT_EQ(delta->inference_count, 4000u);
  EXPECT_EQ(delta->execution_count, 10u);
  EXPECT_DOUBLE_EQ(delta->RequestsPerExecution(), 4.0);
  EXPECT_DOUBLE_EQ(delta->RowsPerExecution(), 400.0);
}

TEST(StatsDeltaTest, NoRequestsMeansZeroNotNaN) {
  absl::StatusOr<ServerStatsDelta> delta = StatsDelta(Stats(5), Stats(5));
  ASSERT_TRUE(delta.ok()) << delta.status();
  EXPECT_EQ(delta->success.count, 0u);
  EXPECT_EQ(delta->queue.MeanUs(), 0.0);
  EXPECT_EQ(delta->RequestsPerExecution(), 0.0);
  EXPECT_EQ(delta->RowsPerExecution(), 0.0);
}

TEST(StatsDeltaTest, RefusesCountersGoingBackwards) {
  absl::StatusOr<ServerStatsDelta> delta = StatsDelta(Stats(50), Stats(10));
  EXPECT_EQ(delta.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(delta.status().message(), HasSubstr("restarted"));
}

TEST(StatsDeltaTest, RefusesDifferentModels) {
  inference::ModelStatistics other = Stats(20);
  other.set_name("other");
  EXPECT_EQ(StatsDelta(Stats(10), other).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(FindModelStatisticsTest, PicksByNameAndVersion) {
  inference::ModelStatisticsResponse response;
  *response.add_model_stats() = Stats(1);
  response.mutable_model_stats(0)->set_name("a");
  *response.add_model_stats() = Stats(2);
  *response.add_model_stats() = Stats(3);
  response.mutable_model_stats(2)->set_version("2");
  EXPECT_EQ(FindModelStatistics(response, "linear_relu", "")->execution_count(),
            2u);
  EXPECT_EQ(
      FindModelStatistics(response, "linear_relu", "2")->execution_count(), 3u);
  EXPECT_EQ(FindModelStatistics(response, "b", "").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace reluserve
