#include "client/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace reluserve {

TensorSummary Summarize(const std::vector<float>& values) {
  TensorSummary summary;
  summary.count = static_cast<int64_t>(values.size());
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double sum = 0.0;
  int64_t counted = 0;
  for (float value : values) {
    if (std::isnan(value)) {
      ++summary.nan_count;
      continue;
    }
    if (std::isinf(value)) ++summary.inf_count;
    if (value == 0.0f) ++summary.zero_count;
    min = std::min(min, static_cast<double>(value));
    max = std::max(max, static_cast<double>(value));
    sum += value;
    ++counted;
  }
  if (counted > 0) {
    summary.min = min;
    summary.max = max;
    summary.mean = sum / static_cast<double>(counted);
  }
  return summary;
}

double Quantile(const std::vector<double>& sorted, double q) {
  const double position = q * static_cast<double>(sorted.size() - 1);
  const size_t lower = static_cast<size_t>(std::floor(position));
  const size_t upper = std::min(lower + 1, sorted.size() - 1);
  const double weight = position - static_cast<double>(lower);
  return sorted[lower] + weight * (sorted[upper] - sorted[lower]);
}

LatencySummary SummarizeLatencies(std::vector<double> samples) {
  LatencySummary summary;
  if (samples.empty()) return summary;
  std::sort(samples.begin(), samples.end());
  summary.count = static_cast<int64_t>(samples.size());
  summary.median = Quantile(samples, 0.5);
  summary.p90 = Quantile(samples, 0.9);
  summary.min = samples.front();
  summary.max = samples.back();
  return summary;
}

}  // namespace reluserve
