#ifndef RELUSERVE_SERVER_SERVICE_SERVED_MODEL_H_
#define RELUSERVE_SERVER_SERVICE_SERVED_MODEL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/core/model.h"
#include "server/runtime/dead_relu_monitor.h"
#include "server/runtime/scheduler.h"
#include "server/service/metrics.h"
#include "server/service/model_config.h"
#include "server/service/statistics.h"

namespace reluserve {

// One model version as the server is to serve it.
struct ServedModelSpec {
  ModelConfig config;
  std::shared_ptr<const Model> model;
  Scheduler::Options scheduling;
};

// Message limits that fit the largest batch of `spec`, with room for the
// protocol's own fields: the sum of its inputs (outputs) in FP32.
int MaxReceiveBytes(const ServedModelSpec& spec);
int MaxSendBytes(const ServedModelSpec& spec);
// InvalidArgument, naming the largest batch that fits, when the messages
// for the model's largest batch would exceed gRPC's 2 GiB message limit.
absl::Status CheckMessageLimits(const ServedModelSpec& spec);

// A served model version with everything the server keeps for it: its
// statistics, dead-ReLU monitors and scheduler.
//
// Thread safety: immutable but for the counters (atomic) and the scheduler
// (thread-safe); every method may be called from any thread.
class ServedModel {
 public:
  // `dead_relu.window_rows` 0 turns monitoring off.
  ServedModel(ServedModelSpec spec, const DeadReluMonitor::Options& dead_relu);

  const ModelConfig& config() const { return spec_.config; }
  const Model& model() const { return *spec_.model; }
  const ModelSignature& signature() const { return spec_.model->signature(); }
  const Scheduler::Options& scheduling() const { return spec_.scheduling; }
  InferenceStatistics& statistics() { return statistics_; }
  const InferenceStatistics& statistics() const { return statistics_; }
  Scheduler& scheduler() { return *scheduler_; }
  // Requests for this model accepted and not yet answered.
  std::atomic<int64_t>& pending_requests() { return pending_requests_; }

  // The counters and dead-ReLU gauges, for /metrics.
  ModelMetrics Metrics() const;

 private:
  const ServedModelSpec spec_;
  InferenceStatistics statistics_;
  std::atomic<int64_t> pending_requests_{0};
  const std::unique_ptr<ReluMonitors> monitors_;  // null: off
  // Last: destroyed first, while the rest is still alive for the jobs it
  // finishes.
  std::unique_ptr<Scheduler> scheduler_;
};

// Every model version one server serves, looked up by name and version.
//
// Thread safety: immutable after construction.
class ServedModels {
 public:
  ServedModels(std::vector<ServedModelSpec> specs,
               const DeadReluMonitor::Options& dead_relu);

  // NotFound, naming what was asked and what is served, unless `name` and
  // `version` select a served model; an empty version means the highest.
  absl::StatusOr<ServedModel*> Find(const std::string& name,
                                    const std::string& version) const;

  // In name order, versions ascending.
  const std::vector<std::unique_ptr<ServedModel>>& all() const {
    return models_;
  }
  // The versions served of `name`, ascending.
  std::vector<std::string> VersionsOf(const std::string& name) const;

 private:
  std::vector<std::unique_ptr<ServedModel>> models_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_SERVED_MODEL_H_
