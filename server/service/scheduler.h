#ifndef RELUSERVE_SERVER_SERVICE_SCHEDULER_H_
#define RELUSERVE_SERVER_SERVICE_SCHEDULER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "server/core/linear_relu.h"
#include "server/service/dead_relu_monitor.h"
#include "server/service/infer_job.h"
#include "server/service/statistics.h"

namespace reluserve {

// Runs inference jobs on the core: inline on the submitting (gRPC) thread,
// or on a pool of compute threads behind a bounded queue, where concurrent
// forward-only requests may be merged into one oneDNN call (dynamic
// batching). A request with grad_y always runs alone: its grad_weight and
// grad_bias are sums over its own rows only.
//
// Thread safety: Submit() may be called from any number of threads.
class Scheduler {
 public:
  struct Options {
    // 0 computes inline on the submitting thread: no queue, no batching.
    int compute_threads = 0;
    // Jobs waiting for a compute thread; beyond this Submit answers
    // UNAVAILABLE.
    size_t max_queue_size = 256;
    // How long the oldest forward request may wait for others to join its
    // batch; 0 turns dynamic batching off.
    std::chrono::microseconds max_batch_delay{0};
    // Stop gathering once a batch has this many rows (0: max_batch_rows).
    int64_t preferred_batch_rows = 0;
    // Never merge beyond this many rows (the model's maximum batch).
    int64_t max_batch_rows = 4096;
  };

  // `relu_monitor` (may be null: monitoring off) sees every successful
  // execution's outputs; both pointers outlive the scheduler.
  Scheduler(const Options& options, std::shared_ptr<const LinearRelu> layer,
            InferenceStatistics* statistics,
            DeadReluMonitor* relu_monitor = nullptr);
  // Finishes the batches being computed, answers jobs still queued with
  // UNAVAILABLE and joins the compute threads.
  ~Scheduler();

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Takes the job and calls its `done` exactly once: after computing it, or
  // at once with UNAVAILABLE when the queue is full.
  void Submit(std::unique_ptr<InferJob> job);

 private:
  using Batch = std::vector<std::unique_ptr<InferJob>>;

  bool Batching() const;
  void WorkerLoop();
  // Blocks for the next job, then gathers forward jobs that may join it.
  // False once stopping with nothing queued.
  bool NextBatch(Batch& batch);
  void Run(Batch& batch);
  absl::Status RunAlone(InferJob& job);
  void RunMerged(Batch& batch);
  static void Finish(std::unique_ptr<InferJob> job, const absl::Status& status);

  const Options options_;
  const std::shared_ptr<const LinearRelu> layer_;
  InferenceStatistics* const statistics_;
  DeadReluMonitor* const relu_monitor_;

  std::mutex mutex_;
  std::condition_variable queued_;
  std::deque<std::unique_ptr<InferJob>> queue_;  // guarded by mutex_
  bool stopping_ = false;                        // guarded by mutex_
  std::vector<std::thread> workers_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_SCHEDULER_H_
