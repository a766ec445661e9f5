#include "server/service/prometheus_text.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace reluserve {
namespace {

TEST(PrometheusTextTest, WritesFamiliesAndSamplesInTextFormat004) {
  PrometheusText out;
  out.Family("requests_total", "counter", "Requests.\nAll of them \\ ok");
  out.Sample("requests_total", {{"model", "m"}, {"version", "1"}},
             uint64_t{42});
  out.Sample("requests_total", {}, 0.25);
  EXPECT_EQ(out.text(),
            "# HELP requests_total Requests.\\nAll of them \\\\ ok\n"
            "# TYPE requests_total counter\n"
            "requests_total{model=\"m\",version=\"1\"} 42\n"
            "requests_total 0.25\n");
}

TEST(PrometheusTextTest, EscapesLabelValues) {
  PrometheusText out;
  out.Sample("x", {{"model", "a\"b\\c\nd"}}, uint64_t{1});
  EXPECT_EQ(out.text(), "x{model=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(PrometheusTextTest, WritesSpecialAndExactValues) {
  PrometheusText out;
  out.Sample("a", {}, std::numeric_limits<double>::infinity());
  out.Sample("b", {}, -std::numeric_limits<double>::infinity());
  out.Sample("c", {}, std::numeric_limits<double>::quiet_NaN());
  out.Sample("d", {}, 1796166201.38);
  out.Sample("e", {}, uint64_t{18446744073709551615u});
  EXPECT_EQ(out.text(),
            "a +Inf\nb -Inf\nc NaN\nd 1796166201.38\n"
            "e 18446744073709551615\n");
}

TEST(HistogramTest, CountsIntoCumulativeBucketsWithUpperBoundsInclusive) {
  Histogram histogram({10, 20, 40});
  for (uint64_t value : {0, 10, 11, 20, 40, 41, 1000}) {
    histogram.Observe(value);
  }
  const Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_EQ(snapshot.cumulative, (std::vector<uint64_t>{2, 4, 5, 7}));
  EXPECT_EQ(snapshot.count(), 7u);
  EXPECT_EQ(snapshot.sum, 0u + 10 + 11 + 20 + 40 + 41 + 1000);
}

TEST(HistogramTest, WritesBucketsSumAndCountInItsUnit) {
  Histogram histogram({100'000, 1'000'000'000});
  histogram.Observe(50'000);
  histogram.Observe(2'000'000'000);
  PrometheusText out;
  WriteHistogram(out, "latency_seconds", {{"pass", "forward"}},
                 histogram.Read(), 1e9);
  EXPECT_EQ(out.text(),
            "latency_seconds_bucket{pass=\"forward\",le=\"0.0001\"} 1\n"
            "latency_seconds_bucket{pass=\"forward\",le=\"1\"} 1\n"
            "latency_seconds_bucket{pass=\"forward\",le=\"+Inf\"} 2\n"
            "latency_seconds_sum{pass=\"forward\"} 2.00005\n"
            "latency_seconds_count{pass=\"forward\"} 2\n");
}

TEST(HistogramTest, LosesNoObservationUnderConcurrentWriters) {
  Histogram histogram({1, 2});
  constexpr int kThreads = 4, kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&histogram, t] {
      for (int i = 0; i < kEach; ++i) histogram.Observe(t % 3);
    });
  }
  for (std::thread& thread : threads) thread.join();
  const Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_EQ(snapshot.count(), uint64_t{kThreads} * kEach);
  // Threads 0 and 3 observe 0, thread 1 observes 1, thread 2 observes 2.
  EXPECT_EQ(snapshot.cumulative[0], 3u * kEach);
  EXPECT_EQ(snapshot.sum, uint64_t{1 + 2} * kEach);
}

}  // namespace
}  // namespace reluserve
