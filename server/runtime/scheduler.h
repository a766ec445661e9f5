#ifndef RELUSERVE_SERVER_RUNTIME_SCHEDULER_H_
#define RELUSERVE_SERVER_RUNTIME_SCHEDULER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "server/core/model.h"
#include "server/runtime/infer_job.h"

namespace reluserve {

// Runs inference jobs on a model: inline on the submitting (front end's)
// thread, or on a pool of compute threads behind a bounded queue, where
// concurrent forward-only requests may be merged into one model run
// (dynamic batching). A backward request always runs alone: its parameter
// gradients are sums over its own rows only.
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

  // Called after every model run with its rows and phases (one run may
  // serve several requests).
  using ExecutionRecorder = std::function<void(
      int64_t rows, Nanoseconds compute_input, Nanoseconds compute_infer,
      Nanoseconds compute_output)>;

  // `observer` (may be null: monitoring off) sees the activations of every
  // run; it outlives the scheduler.
  Scheduler(const Options& options, std::shared_ptr<const Model> model,
            ExecutionRecorder record_execution,
            ActivationObserver* observer = nullptr);
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
  const std::shared_ptr<const Model> model_;
  const ExecutionRecorder record_execution_;
  ActivationObserver* const observer_;

  std::mutex mutex_;
  std::condition_variable queued_;
  std::deque<std::unique_ptr<InferJob>> queue_;  // guarded by mutex_
  bool stopping_ = false;                        // guarded by mutex_
  std::vector<std::thread> workers_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_RUNTIME_SCHEDULER_H_
