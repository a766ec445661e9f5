#include "server/service/statistics.h"

namespace reluserve {
namespace {

uint64_t NowMillisecondsSinceEpoch() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

void FillDuration(uint64_t count, uint64_t ns,
                  inference::StatisticDuration& out) {
  out.set_count(count);
  out.set_ns(ns);
}

}  // namespace

void InferenceStatistics::Duration::Add(Nanoseconds duration) {
  count.fetch_add(1, std::memory_order_relaxed);
  ns.fetch_add(static_cast<uint64_t>(duration.count()),
               std::memory_order_relaxed);
}

void InferenceStatistics::Duration::Fill(
    inference::StatisticDuration& out) const {
  FillDuration(count.load(std::memory_order_relaxed),
               ns.load(std::memory_order_relaxed), out);
}

void InferenceStatistics::RecordSuccess(int64_t rows, Nanoseconds total,
                                        const RequestPhases& phases) {
  success_.Add(total);
  queue_.Add(phases.queue);
  compute_input_.Add(phases.compute_input);
  compute_infer_.Add(phases.compute_infer);
  compute_output_.Add(phases.compute_output);
  inference_count_.fetch_add(static_cast<uint64_t>(rows),
                             std::memory_order_relaxed);
  last_inference_ms_.store(NowMillisecondsSinceEpoch(),
                           std::memory_order_relaxed);
}

void InferenceStatistics::RecordFailure(Nanoseconds total) {
  fail_.Add(total);
  last_inference_ms_.store(NowMillisecondsSinceEpoch(),
                           std::memory_order_relaxed);
}

void InferenceStatistics::RecordExecution(int64_t batch_size,
                                          Nanoseconds compute_input,
                                          Nanoseconds compute_infer,
                                          Nanoseconds compute_output) {
  execution_count_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(batch_mutex_);
  BatchDurations& batch = by_batch_size_[batch_size];
  ++batch.count;
  batch.input_ns += static_cast<uint64_t>(compute_input.count());
  batch.infer_ns += static_cast<uint64_t>(compute_infer.count());
  batch.output_ns += static_cast<uint64_t>(compute_output.count());
}

void InferenceStatistics::Fill(inference::ModelStatistics& statistics) const {
  statistics.set_last_inference(
      last_inference_ms_.load(std::memory_order_relaxed));
  statistics.set_inference_count(
      inference_count_.load(std::memory_order_relaxed));
  statistics.set_execution_count(
      execution_count_.load(std::memory_order_relaxed));
  inference::InferStatistics& stats = *statistics.mutable_inference_stats();
  success_.Fill(*stats.mutable_success());
  fail_.Fill(*stats.mutable_fail());
  queue_.Fill(*stats.mutable_queue());
  compute_input_.Fill(*stats.mutable_compute_input());
  compute_infer_.Fill(*stats.mutable_compute_infer());
  compute_output_.Fill(*stats.mutable_compute_output());
  std::lock_guard<std::mutex> lock(batch_mutex_);
  for (const auto& [batch_size, durations] : by_batch_size_) {
    inference::InferBatchStatistics& batch = *statistics.add_batch_stats();
    batch.set_batch_size(static_cast<uint64_t>(batch_size));
    FillDuration(durations.count, durations.input_ns,
                 *batch.mutable_compute_input());
    FillDuration(durations.count, durations.infer_ns,
                 *batch.mutable_compute_infer());
    FillDuration(durations.count, durations.output_ns,
                 *batch.mutable_compute_output());
  }
}

}  // namespace reluserve
