#ifndef RELUSERVE_SERVER_SERVICE_PROCESS_METRICS_H_
#define RELUSERVE_SERVER_SERVICE_PROCESS_METRICS_H_

#include "server/service/prometheus_text.h"

namespace reluserve {

// The Prometheus client libraries' standard process metrics, read from
// /proc: process_resident_memory_bytes, process_cpu_seconds_total,
// process_start_time_seconds (and process_open_fds, process_max_fds).
// Thread safety: may be called from any thread.
void WriteProcessMetrics(PrometheusText& out);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_PROCESS_METRICS_H_
