#ifndef RELUSERVE_SERVER_SERVICE_PROMETHEUS_TEXT_H_
#define RELUSERVE_SERVER_SERVICE_PROMETHEUS_TEXT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace reluserve {

// Prometheus' text exposition format, version 0.0.4, written by hand: Debian
// packages no Prometheus client library for C++.
//
// Thread safety: none; build one per scrape.
class PrometheusText {
 public:
  using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

  // Starts a metric family: its # HELP and # TYPE lines. The samples that
  // follow belong to it; each family appears once per exposition.
  void Family(std::string_view name, std::string_view type,
              std::string_view help);
  void Sample(std::string_view name, const Labels& labels, double value);
  void Sample(std::string_view name, const Labels& labels, uint64_t value);
  void Sample(std::string_view name, const Labels& labels, int64_t value) {
    Sample(name, labels, static_cast<double>(value));
  }

  const std::string& text() const { return text_; }

 private:
  void Start(std::string_view name, const Labels& labels);

  std::string text_;
};

// A histogram of integer observations (nanoseconds, rows) with fixed bucket
// bounds, written in a unit of its own (e.g. seconds).
//
// Thread safety: Observe() and Read() may be called concurrently; Observe is
// two relaxed atomic adds.
class Histogram {
 public:
  // `upper_bounds` ascending; a +Inf bucket is added.
  explicit Histogram(std::vector<uint64_t> upper_bounds);

  void Observe(uint64_t value);

  struct Snapshot {
    std::vector<uint64_t> bounds;
    std::vector<uint64_t> cumulative;  // bounds.size() + 1, the last +Inf
    uint64_t sum = 0;
    uint64_t count() const {
      return cumulative.empty() ? 0 : cumulative.back();
    }
  };
  Snapshot Read() const;

 private:
  const std::vector<uint64_t> bounds_;
  const std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> sum_{0};
};

// The histogram's _bucket, _sum and _count samples (the family already
// started), bounds and sum divided by `divisor` (1e9: nanoseconds written as
// seconds; dividing keeps 100000 ns as 0.0001 where multiplying by 1e-9
// would not).
void WriteHistogram(PrometheusText& out, std::string_view name,
                    const PrometheusText::Labels& labels,
                    const Histogram::Snapshot& histogram, double divisor);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_PROMETHEUS_TEXT_H_
