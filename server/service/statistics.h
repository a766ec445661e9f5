#ifndef RELUSERVE_SERVER_SERVICE_STATISTICS_H_
#define RELUSERVE_SERVER_SERVICE_STATISTICS_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>

#include "grpc_service.pb.h"

namespace reluserve {

using Nanoseconds = std::chrono::nanoseconds;

// Per-model counters in the shape of Triton's statistics extension. Per
// request: success/fail (arrival to answer), queue, compute_input,
// compute_infer, compute_output; per execution (one oneDNN call, which
// dynamic batching may share between requests): execution_count and the
// per-batch-size stats.
//
// Thread safety: every method may be called concurrently; request counters
// are lock-free, the per-batch-size map takes a mutex once per execution.
class InferenceStatistics {
 public:
  struct RequestPhases {
    Nanoseconds queue{0};
    Nanoseconds compute_input{0};
    Nanoseconds compute_infer{0};
    Nanoseconds compute_output{0};
  };

  void RecordSuccess(int64_t rows, Nanoseconds total,
                     const RequestPhases& phases);
  void RecordFailure(Nanoseconds total);
  void RecordExecution(int64_t batch_size, Nanoseconds compute_input,
                       Nanoseconds compute_infer, Nanoseconds compute_output);

  void Fill(inference::ModelStatistics& statistics) const;

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
  mutable std::mutex batch_mutex_;
  std::map<int64_t, BatchDurations> by_batch_size_;  // guarded by batch_mutex_
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_STATISTICS_H_
