#include "server/runtime/scheduler.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/bfloat16.h"

namespace reluserve {
namespace {

using Clock = std::chrono::steady_clock;

Nanoseconds Since(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration_cast<Nanoseconds>(end - start);
}

// Per-thread staging for merged batches, reused across calls: per signature
// input the gathered rows, per signature output the merged results.
struct BatchBuffers {
  std::vector<std::vector<uint8_t>> inputs;
  std::vector<std::vector<float>> outputs;
};

BatchBuffers& LocalBatchBuffers() {
  thread_local BatchBuffers buffers;
  return buffers;
}

// BF16 outputs: FP32 results into the reply's bytes.
void ConvertOutputs(const InferJob& job) {
  for (const InferJob::Conversion& conversion : job.conversions) {
    ToBfloat16(conversion.from, conversion.to, conversion.count);
  }
}

int64_t ElementCount(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

// Whether `candidate` may share one model run with `front`: both forward,
// row-wise, of one input precision and with the same inputs given.
bool Mergeable(const ValidatedRequest& front,
               const ValidatedRequest& candidate) {
  if (candidate.backward || !candidate.row_wise ||
      candidate.input_precision != front.input_precision) {
    return false;
  }
  for (size_t i = 0; i < front.inputs.size(); ++i) {
    if ((front.inputs[i] == nullptr) != (candidate.inputs[i] == nullptr)) {
      return false;
    }
  }
  return true;
}

}  // namespace

Scheduler::Scheduler(const Options& options, std::shared_ptr<const Model> model,
                     ExecutionRecorder record_execution,
                     ActivationObserver* observer)
    : options_(options),
      model_(std::move(model)),
      record_execution_(std::move(record_execution)),
      observer_(observer) {
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
  const ValidatedRequest& front = batch.front()->validated;
  if (!Batching() || front.backward || !front.row_wise) return true;

  const int64_t preferred = options_.preferred_batch_rows > 0
                                ? options_.preferred_batch_rows
                                : options_.max_batch_rows;
  int64_t rows = front.batch;
  const Clock::time_point flush_at =
      batch.front()->enqueued + options_.max_batch_delay;
  while (true) {
    // Oldest first; backward requests stay queued for a run of their own.
    for (auto it = queue_.begin(); it != queue_.end() && rows < preferred;) {
      const ValidatedRequest& candidate = (*it)->validated;
      if (Mergeable(front, candidate) &&
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
    } else if (job->cancelled && job->cancelled()) {
      Finish(std::move(job),
             absl::CancelledError(
                 "the client cancelled the request while it was queued"));
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
  const ValidatedRequest& request = job.validated;
  ModelRun run;
  run.batch = request.batch;
  run.input_precision = request.input_precision;
  run.inputs = request.inputs;
  run.outputs = job.outputs;
  run.observer = observer_;
  const Clock::time_point start = Clock::now();
  const absl::Status status = model_->Run(run);
  const Clock::time_point computed = Clock::now();
  if (status.ok()) ConvertOutputs(job);
  job.phases.compute_infer = Since(start, computed);
  job.phases.compute_output = Since(computed, Clock::now());
  record_execution_(request.batch, Nanoseconds(0), job.phases.compute_infer,
                    job.phases.compute_output);
  return status;
}

void Scheduler::RunMerged(Batch& batch) {
  const ValidatedRequest& front = batch.front()->validated;
  const size_t input_count = front.inputs.size();
  const size_t output_count = batch.front()->outputs.size();
  const size_t element_bytes = ElementBytes(front.input_precision);
  int64_t rows = 0;
  for (const auto& job : batch) rows += job->validated.batch;

  // Merging forces one copy in (gather) and one out (scatter).
  const Clock::time_point start = Clock::now();
  BatchBuffers& buffers = LocalBatchBuffers();
  buffers.inputs.resize(std::max(buffers.inputs.size(), input_count));
  buffers.outputs.resize(std::max(buffers.outputs.size(), output_count));
  ModelRun run;
  run.batch = rows;
  run.input_precision = front.input_precision;
  run.inputs.assign(input_count, nullptr);
  run.outputs.assign(output_count, nullptr);
  run.observer = observer_;
  for (size_t i = 0; i < input_count; ++i) {
    if (front.inputs[i] == nullptr) continue;
    const size_t row_bytes =
        static_cast<size_t>(ElementCount(front.input_shapes[i]) / front.batch) *
        element_bytes;
    std::vector<uint8_t>& gathered = buffers.inputs[i];
    if (gathered.size() < rows * row_bytes) gathered.resize(rows * row_bytes);
    uint8_t* to = gathered.data();
    for (const auto& job : batch) {
      const size_t bytes =
          static_cast<size_t>(job->validated.batch) * row_bytes;
      std::memcpy(to, job->validated.inputs[i], bytes);
      to += bytes;
    }
    run.inputs[i] = gathered.data();
  }
  // Every output some request asked for, and its values per row.
  std::vector<size_t> row_values(output_count, 0);
  for (const auto& job : batch) {
    for (const ValidatedRequest::Output& output : job->validated.outputs) {
      const auto index = static_cast<size_t>(output.index);
      if (row_values[index] != 0) continue;
      row_values[index] =
          static_cast<size_t>(output.count / job->validated.batch);
      std::vector<float>& merged = buffers.outputs[index];
      const size_t values = static_cast<size_t>(rows) * row_values[index];
      if (merged.size() < values) merged.resize(values);
      run.outputs[index] = merged.data();
    }
  }
  const Clock::time_point gathered = Clock::now();
  const absl::Status status = model_->Run(run);
  const Clock::time_point computed = Clock::now();
  if (status.ok()) {
    size_t row = 0;
    for (const auto& job : batch) {
      for (size_t index = 0; index < output_count; ++index) {
        if (job->outputs[index] == nullptr) continue;
        const size_t values =
            static_cast<size_t>(job->validated.batch) * row_values[index];
        std::memcpy(job->outputs[index],
                    run.outputs[index] + row * row_values[index],
                    values * sizeof(float));
      }
      ConvertOutputs(*job);
      row += static_cast<size_t>(job->validated.batch);
    }
  }
  const Clock::time_point scattered = Clock::now();

  const Nanoseconds input = Since(start, gathered);
  const Nanoseconds infer = Since(gathered, computed);
  const Nanoseconds output = Since(computed, scattered);
  record_execution_(rows, input, infer, output);
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
