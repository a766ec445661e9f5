#ifndef RELUSERVE_SERVER_SERVICE_STATISTICS_H_
#define RELUSERVE_SERVER_SERVICE_STATISTICS_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>

#include "absl/status/status.h"
#include "grpc_service.pb.h"
#include "server/runtime/infer_job.h"
#include "server/service/prometheus_text.h"

namespace reluserve {

// Why a request for a served model failed, in Triton's metric labels
// (nv_inference_request_failure{reason}).
enum class FailureReason { kRejected, kCanceled, kBackend, kOther };
inline constexpr int kFailureReasons = 4;
const char* FailureReasonLabel(FailureReason reason);
// Refused before compute (invalid, too large, queue full, draining,
// deadline passed in the queue): REJECTED; cancelled by the client:
// CANCELED; failed inside the core: BACKEND; anything else: OTHER.
FailureReason FailureReasonOf(const absl::Status& status);

// Per-model counters in the shape of Triton's statistics extension. Per
// request: success/fail (arrival to answer), queue, compute_input,
// compute_infer, compute_output; per execution (one oneDNN call, which
// dynamic batching may share between requests): execution_count and the
// per-batch-size stats. Also what the metrics endpoint adds to Triton's
// statistics: failure reasons and latency and batch-size histograms.
//
// Thread safety: every method may be called concurrently; request counters
// are lock-free, the per-batch-size map takes a mutex once per execution.
class InferenceStatistics {
 public:
  using RequestPhases = reluserve::RequestPhases;

  InferenceStatistics();

  // `backward`: the request asked for the backward pass.
  void RecordSuccess(int64_t rows, Nanoseconds total,
                     const RequestPhases& phases, bool backward);
  void RecordFailure(Nanoseconds total, FailureReason reason);
  void RecordExecution(int64_t batch_size, Nanoseconds compute_input,
                       Nanoseconds compute_infer, Nanoseconds compute_output);

  void Fill(inference::ModelStatistics& statistics) const;

  // The counters the metrics endpoint exposes, read at once.
  struct Totals {
    uint64_t success = 0;
    uint64_t failure[kFailureReasons] = {};
    uint64_t inference_count = 0;  // rows of successful requests
    uint64_t execution_count = 0;
    // Of successful requests, as ModelStatistics counts them.
    uint64_t request_ns = 0, queue_ns = 0, compute_input_ns = 0,
             compute_infer_ns = 0, compute_output_ns = 0;
    Histogram::Snapshot forward_request_ns, backward_request_ns, batch_rows;
  };
  Totals Read() const;

 private:
  struct Duration {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> ns{0};
    void Add(Nanoseconds duration);
    void Fill(inference::StatisticDuration& out) const;
  };
  struct BatchDurations {
    uint64_t count = 0;
    uint64_t input_ns = 0, infer_ns = 0, output_ns = 0;
  };

  Duration success_, fail_, queue_, compute_input_, compute_infer_,
      compute_output_;
  std::atomic<uint64_t> inference_count_{0};
  std::atomic<uint64_t> execution_count_{0};
  std::atomic<uint64_t> last_inference_ms_{0};
  std::atomic<uint64_t> failures_[kFailureReasons] = {};
  Histogram forward_request_ns_, backward_request_ns_, batch_rows_;
  mutable std::mutex batch_mutex_;
  std::map<int64_t, BatchDurations> by_batch_size_;  // guarded by batch_mutex_
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_STATISTICS_H_
