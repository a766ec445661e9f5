#ifndef RELUSERVE_CLIENT_STATS_H_
#define RELUSERVE_CLIENT_STATS_H_

#include <cstdint>
#include <vector>

namespace reluserve {

// A short description of a tensor's values, for printing.
struct TensorSummary {
  int64_t count = 0;      // all elements
  int64_t nan_count = 0;  // NaNs, left out of min, max and mean
  int64_t inf_count = 0;  // +-Inf, included in min, max and mean
  int64_t zero_count = 0;
  double min = 0.0;  // 0 when there is no non-NaN value
  double max = 0.0;
  double mean = 0.0;
  double zero_fraction() const {
    return count == 0 ? 0.0 : static_cast<double>(zero_count) / count;
  }
};

TensorSummary Summarize(const std::vector<float>& values);

// Order statistics of a set of latencies (any unit; the CLI uses ms).
// Percentiles interpolate linearly between the closest ranks, as numpy's
// default `np.percentile` does, so the median of an even count is the mean of
// the middle two.
struct LatencySummary {
  int64_t count = 0;
  double median = 0.0;
  double p90 = 0.0;
  double min = 0.0;
  double max = 0.0;
};

// All zeros for an empty input.
LatencySummary SummarizeLatencies(std::vector<double> samples);

// The q-quantile (q in [0, 1]) of ascending `sorted`, interpolated as above.
// `sorted` must not be empty.
double Quantile(const std::vector<double>& sorted, double q);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_STATS_H_
