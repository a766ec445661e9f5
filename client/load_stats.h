// The arithmetic of reluserve-load: latency percentiles, open-loop arrival
// times, and the difference of two ModelStatistics snapshots.

#ifndef RELUSERVE_CLIENT_LOAD_STATS_H_
#define RELUSERVE_CLIENT_LOAD_STATS_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "grpc_service.pb.h"

namespace reluserve {

// Order statistics of a step's latencies. Percentiles interpolate linearly
// between closest ranks (numpy's default, as client/stats.h does).
struct LatencyStats {
  int64_t count = 0;
  double min = 0, mean = 0, p50 = 0, p90 = 0, p95 = 0, p99 = 0, max = 0;
};

// All zeros for no samples.
LatencyStats ComputeLatencyStats(std::vector<double> samples);

enum class Arrivals {
  kPoisson,   // exponential gaps of mean 1/rate
  kConstant,  // every 1/rate seconds exactly
};

// Arrival times of an open-loop step, in seconds from the step's start: the
// first at 0, then one gap after another. Deterministic for a seed.
// A plain value: not for concurrent use.
class ArrivalSchedule {
 public:
  // `rate` in requests per second, > 0.
  ArrivalSchedule(Arrivals kind, double rate, uint64_t seed);
  // The next arrival's offset; the first call returns 0.
  double Next();

 private:
  Arrivals kind_;
  double rate_;
  int64_t index_ = 0;
  double offset_ = 0;
  std::mt19937_64 engine_;
};

// A Triton StatisticDuration difference.
struct PhaseDelta {
  uint64_t count = 0;
  uint64_t ns = 0;
  // Mean microseconds per counted request; 0 when the count is 0.
  double MeanUs() const;
};

// What the server did between two ModelStatistics snapshots.
struct ServerStatsDelta {
  PhaseDelta success, fail, queue, compute_input, compute_infer, compute_output;
  uint64_t inference_count = 0;  // rows
  uint64_t execution_count = 0;  // model executions (batches)
  // Requests (success.count) and rows per execution; 0 without executions.
  double RequestsPerExecution() const;
  double RowsPerExecution() const;
};

// after - before. FailedPrecondition when a counter went down (a restarted
// server) or the two are of different models.
absl::StatusOr<ServerStatsDelta> StatsDelta(
    const inference::ModelStatistics& before,
    const inference::ModelStatistics& after);

// The entry of `model` (and `version`, unless empty) in `response`.
// NotFound when there is none.
absl::StatusOr<inference::ModelStatistics> FindModelStatistics(
    const inference::ModelStatisticsResponse& response,
    const std::string& model, const std::string& version);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_LOAD_STATS_H_
