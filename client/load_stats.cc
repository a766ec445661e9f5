#include "client/load_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/stats.h"

namespace reluserve {
namespace {

absl::Status Subtract(const char* name, uint64_t before, uint64_t after,
                      uint64_t& delta) {
  if (after < before) {
    return absl::FailedPreconditionError(
        absl::StrCat("server statistics went backwards (", name, ": ", before,
                     " -> ", after, "); was the server restarted?"));
  }
  delta = after - before;
  return absl::OkStatus();
}

absl::Status Subtract(const char* name, const inference::StatisticDuration& a,
                      const inference::StatisticDuration& b, PhaseDelta& out) {
  absl::Status status = Subtract(name, a.count(), b.count(), out.count);
  if (status.ok()) status = Subtract(name, a.ns(), b.ns(), out.ns);
  return status;
}

}  // namespace

LatencyStats ComputeLatencyStats(std::vector<double> samples) {
  LatencyStats stats;
  if (samples.empty()) return stats;
  std::sort(samples.begin(), samples.end());
  stats.count = static_cast<int64_t>(samples.size());
  stats.min = samples.front();
  stats.max = samples.back();
  stats.mean = std::accumulate(samples.begin(), samples.end(), 0.0) /
               static_cast<double>(samples.size());
  stats.p50 = Quantile(samples, 0.50);
  stats.p90 = Quantile(samples, 0.90);
  stats.p95 = Quantile(samples, 0.95);
  stats.p99 = Quantile(samples, 0.99);
  return stats;
}

ArrivalSchedule::ArrivalSchedule(Arrivals kind, double rate, uint64_t seed)
    : kind_(kind), rate_(rate), engine_(seed) {}

double ArrivalSchedule::Next() {
  if (index_++ == 0) return 0.0;
  if (kind_ == Arrivals::kConstant) {
    // From the index, not a running sum, so no rounding error accumulates.
    return static_cast<double>(index_ - 1) / rate_;
  }
  // Inverse transform of a uniform in (0, 1]: never log(0).
  const double uniform =
      (static_cast<double>(engine_() >> 11) + 1.0) * 0x1.0p-53;
  offset_ += -std::log(uniform) / rate_;
  return offset_;
}

double PhaseDelta::MeanUs() const {
  return count == 0
             ? 0.0
             : static_cast<double>(ns) / 1e3 / static_cast<double>(count);
}

double ServerStatsDelta::RequestsPerExecution() const {
  return execution_count == 0 ? 0.0
                              : static_cast<double>(success.count) /
                                    static_cast<double>(execution_count);
}

double ServerStatsDelta::RowsPerExecution() const {
  return execution_count == 0 ? 0.0
                              : static_cast<double>(inference_count) /
                                    static_cast<double>(execution_count);
}

absl::StatusOr<ServerStatsDelta> StatsDelta(
    const inference::ModelStatistics& before,
    const inference::ModelStatistics& after) {
  if (before.name() != after.name() || before.version() != after.version()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "statistics of different models: ", before.name(), " v",
        before.version(), " and ", after.name(), " v", after.version()));
  }
  const inference::InferStatistics& a = before.inference_stats();
  const inference::InferStatistics& b = after.inference_stats();
  ServerStatsDelta delta;
  for (absl::Status status : {
           Subtract("success", a.success(), b.success(), delta.success),
           Subtract("fail", a.fail(), b.fail(), delta.fail),
           Subtract("queue", a.queue(), b.queue(), delta.queue),
           Subtract("compute_input", a.compute_input(), b.compute_input(),
                    delta.compute_input),
           Subtract("compute_infer", a.compute_infer(), b.compute_infer(),
                    delta.compute_infer),
           Subtract("compute_output", a.compute_output(), b.compute_output(),
                    delta.compute_output),
           Subtract("inference_count", before.inference_count(),
                    after.inference_count(), delta.inference_count),
           Subtract("execution_count", before.execution_count(),
                    after.execution_count(), delta.execution_count),
       }) {
    if (!status.ok()) return status;
  }
  return delta;
}

absl::StatusOr<inference::ModelStatistics> FindModelStatistics(
    const inference::ModelStatisticsResponse& response,
    const std::string& model, const std::string& version) {
  for (const inference::ModelStatistics& stats : response.model_stats()) {
    if (stats.name() == model &&
        (version.empty() || stats.version() == version)) {
      return stats;
    }
  }
  return absl::NotFoundError(
      absl::StrCat("ModelStatistics has no entry for model ", model,
                   version.empty() ? "" : " version ", version));
}

}  // namespace reluserve
