#include "server/service/scheduler.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace reluserve {
namespace {

using Clock = std::chrono::steady_clock;

Nanoseconds Since(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration_cast<Nanoseconds>(end - start);
}

// Per-thread staging for merged batches, reused across calls.
struct BatchBuffers {
  std::vector<uint8_t> x;
  std::vector<float> y;
};

// Where y goes when a backward request did not ask for it but the dead-ReLU
// monitor wants to see it.
float* LocalActivations(size_t count) {
  thread_local std::vector<float> activations;
  if (activations.size() < count) activations.resize(count);
  return activations.data();
}

// BF16 outputs: FP32 results into the response's bytes.
void ConvertOutputs(const InferJob& job) {
  for (const InferJob::Conversion& conversion : job.conversions) {
    ToBfloat16(conversion.from, conversion.to, conversion.count);
  }
}

BatchBuffers& LocalBatchBuffers() {
  thread_local BatchBuffers buffers;
  return buffers;
}

}  // namespace

Scheduler::Scheduler(const Options& options,
                     std::shared_ptr<const LinearRelu> layer,
                     InferenceStatistics* statistics,
                     DeadReluMonitor* relu_monitor)
    : options_(options),
      layer_(std::move(layer)),
      statistics_(statistics),
      relu_monitor_(relu_monitor) {
  for (int i = 0; i < options_.compute_threads; ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  queued_.notify_all();
  for (std::thread& worker : workers_) worker.join();
  for (std::unique_ptr<InferJob>& job : queue_) {
    Finish(std::move(job), absl::UnavailableError("server is shutting down"));
  }
}

bool Scheduler::Batching() const {
  return options_.max_batch_delay.count() > 0;
}

void Scheduler::Submit(std::unique_ptr<InferJob> job) {
  job->enqueued = Clock::now();
  if (workers_.empty()) {
    Batch alone;
    alone.push_back(std::move(job));
    Run(alone);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!stopping_ && queue_.size() < options_.max_queue_size) {
      queue_.push_back(std::move(job));
    }
  }
  if (job != nullptr) {
    Finish(std::move(job),
           absl::UnavailableError(absl::StrCat(
               "server busy: ", options_.max_queue_size,
               " requests already queued; retry after a short backoff")));
    return;
  }
  // Wake every worker: one may be waiting for its batch to fill.
  queued_.notify_all();
}

void Scheduler::WorkerLoop() {
  Batch batch;
  while (NextBatch(batch)) {
    Run(batch);
    batch.clear();
  }
}

bool Scheduler::NextBatch(Batch& batch) {
  std::unique_lock<std::mutex> lock(mutex_);
  queued_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
  if (stopping_) return false;
  batch.push_back(std::move(queue_.front()));
  queue_.pop_front();
  if (!Batching() || batch.front()->validated.NeedsBackward()) return true;

  const int64_t preferred = options_.preferred_batch_rows > 0
                                ? options_.preferred_batch_rows
                                : options_.max_batch_rows;
  int64_t rows = batch.front()->validated.batch;
  const Clock::time_point flush_at =
      batch.front()->enqueued + options_.max_batch_delay;
  while (true) {
    // Oldest first; requests with grad_y stay queued for a batch of their
    // own.
    for (auto it = queue_.begin(); it != queue_.end() && rows < preferred;) {
      const ValidatedInferRequest& candidate = (*it)->validated;
      if (!candidate.NeedsBackward() &&
          candidate.input_precision ==
              batch.front()->validated.input_precision &&
          rows + candidate.batch <= options_.max_batch_rows) {
        rows += candidate.batch;
        batch.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (rows >= preferred || stopping_ || Clock::now() >= flush_at) break;
    queued_.wait_until(lock, flush_at);
  }
  return true;
}

void Scheduler::Run(Batch& batch) {
  const Clock::time_point dequeued = Clock::now();
  const auto wall_now = std::chrono::system_clock::now();
  Batch live;
  for (std::unique_ptr<InferJob>& job : batch) {
    job->phases.queue = Since(job->enqueued, dequeued);
    // Compute nobody can receive is wasted on a busy server.
    if (job->deadline < wall_now) {
      Finish(std::move(job),
             absl::DeadlineExceededError(
                 "deadline passed while the request was queued"));
    } else {
      live.push_back(std::move(job));
    }
  }
  if (live.size() == 1) {
    const absl::Status status = RunAlone(*live.front());
    Finish(std::move(live.front()), status);
  } else if (!live.empty()) {
    RunMerged(live);
  }
}

absl::Status Scheduler::RunAlone(InferJob& job) {
  // Inputs and outputs are the messages' own bytes: no copies.
  const ValidatedInferRequest& request = job.validated;
  float* y = job.y;
  if (y == nullptr && relu_monitor_ != nullptr) {
    y = LocalActivations(
        static_cast<size_t>(request.batch * layer_->out_features()));
  }
  const Clock::time_point start = Clock::now();
  const absl::Status status =
      request.NeedsBackward()
          ? layer_->ForwardBackward(request.batch, request.x, request.grad_y,
                                    request.input_precision, y, job.gradients)
          : layer_->Forward(request.batch, request.x, request.input_precision,
                            y);
  const Clock::time_point computed = Clock::now();
  if (status.ok()) {
    if (relu_monitor_ != nullptr) relu_monitor_->Observe(y, request.batch);
    ConvertOutputs(job);
  }
  job.phases.compute_infer = Since(start, computed);
  job.phases.compute_output = Since(computed, Clock::now());
  statistics_->RecordExecution(request.batch, Nanoseconds(0),
                               job.phases.compute_infer,
                               job.phases.compute_output);
  return status;
}

void Scheduler::RunMerged(Batch& batch) {
  const int64_t k = layer_->in_features(), m = layer_->out_features();
  // NextBatch merges only requests of one input precision.
  const Precision precision = batch.front()->validated.input_precision;
  const size_t row_bytes = static_cast<size_t>(k) * ElementBytes(precision);
  int64_t rows = 0;
  for (const auto& job : batch) rows += job->validated.batch;

  // Merging forces one copy in (gather) and one out (scatter).
  const Clock::time_point start = Clock::now();
  BatchBuffers& buffers = LocalBatchBuffers();
  if (buffers.x.size() < rows * row_bytes) buffers.x.resize(rows * row_bytes);
  if (buffers.y.size() < static_cast<size_t>(rows * m))
    buffers.y.resize(rows * m);
  uint8_t* x = buffers.x.data();
  for (const auto& job : batch) {
    const size_t bytes = static_cast<size_t>(job->validated.batch) * row_bytes;
    std::memcpy(x, job->validated.x, bytes);
    x += bytes;
  }
  const Clock::time_point gathered = Clock::now();
  const absl::Status status =
      layer_->Forward(rows, buffers.x.data(), precision, buffers.y.data());
  const Clock::time_point computed = Clock::now();
  const float* y = buffers.y.data();
  if (status.ok() && relu_monitor_ != nullptr) relu_monitor_->Observe(y, rows);
  for (const auto& job : batch) {
    const size_t count = static_cast<size_t>(job->validated.batch * m);
    if (status.ok() && job->y != nullptr) {
      std::memcpy(job->y, y, count * sizeof(float));
      ConvertOutputs(*job);
    }
    y += count;
  }
  const Clock::time_point scattered = Clock::now();

  const Nanoseconds input = Since(start, gathered);
  const Nanoseconds infer = Since(gathered, computed);
  const Nanoseconds output = Since(computed, scattered);
  statistics_->RecordExecution(rows, input, infer, output);
  for (std::unique_ptr<InferJob>& job : batch) {
    job->phases.compute_input += input;
    job->phases.compute_infer = infer;
    job->phases.compute_output = output;
    Finish(std::move(job), status);
  }
}

void Scheduler::Finish(std::unique_ptr<InferJob> job,
                       const absl::Status& status) {
  job->done(*job, status);
}

}  // namespace reluserve
