#ifndef RELUSERVE_SERVER_SERVICE_METRICS_H_
#define RELUSERVE_SERVER_SERVICE_METRICS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "server/runtime/dead_relu_monitor.h"
#include "server/service/grpc_call_metrics.h"
#include "server/service/statistics.h"

namespace reluserve {

// One served model's counters, read at once for a scrape.
struct ModelMetrics {
  std::string name;
  std::string version;
  InferenceStatistics::Totals totals;
  int64_t pending_requests = 0;
  struct ReluLayer {
    std::string layer;  // the index of the Linear the ReLU follows
    DeadReluMonitor::Snapshot snapshot;
  };
  std::vector<ReluLayer> relu_layers;  // empty when monitoring is off
};

// The whole /metrics exposition (docs/operations.md lists every family):
// Triton's nv_inference_* per model, ReluServe's histograms and dead-ReLU
// gauges, grpc_server_handled_total and the process metrics.
std::string RenderMetrics(const std::vector<ModelMetrics>& models,
                          const GrpcCallCounter& calls);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_METRICS_H_
