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

// Request latency buckets, 50 µs to 10 s.
std::vector<uint64_t> LatencyBucketsNs() {
  return {50'000,      100'000,       250'000,       500'000,
          1'000'000,   2'500'000,     5'000'000,     10'000'000,
          25'000'000,  50'000'000,    100'000'000,   250'000'000,
          500'000'000, 1'000'000'000, 2'500'000'000, 10'000'000'000};
}

// Rows per execution: powers of two up to 8192.
std::vector<uint64_t> BatchRowBuckets() {
  std::vector<uint64_t> bounds;
  for (uint64_t rows = 1; rows <= 8192; rows *= 2) bounds.push_back(rows);
  return bounds;
}

}  // namespace

const char* FailureReasonLabel(FailureReason reason) {
  switch (reason) {
    case FailureReason::kRejected:
      return "REJECTED";
    case FailureReason::kCanceled:
      return "CANCELED";
    case FailureReason::kBackend:
      return "BACKEND";
    case FailureReason::kOther:
      break;
  }
  return "OTHER";
}

FailureReason FailureReasonOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kFailedPrecondition:
      return FailureReason::kRejected;
    case absl::StatusCode::kCancelled:
      return FailureReason::kCanceled;
    case absl::StatusCode::kInternal:
      return FailureReason::kBackend;
    default:
      return FailureReason::kOther;
  }
}

InferenceStatistics::InferenceStatistics()
    : forward_request_ns_(LatencyBucketsNs()),
      backward_request_ns_(LatencyBucketsNs()),
      batch_rows_(BatchRowBuckets()) {}

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
                                        const RequestPhases& phases,
                                        bool backward) {
  success_.Add(total);
  (backward ? backward_request_ns_ : forward_request_ns_)
      .Observe(static_cast<uint64_t>(total.count()));
  queue_.Add(phases.queue);
  compute_input_.Add(phases.compute_input);
  compute_infer_.Add(phases.compute_infer);
  compute_output_.Add(phases.compute_output);
  inference_count_.fetch_add(static_cast<uint64_t>(rows),
                             std::memory_order_relaxed);
  last_inference_ms_.store(NowMillisecondsSinceEpoch(),
                           std::memory_order_relaxed);
}

void InferenceStatistics::RecordFailure(Nanoseconds total,
                                        FailureReason reason) {
  fail_.Add(total);
  failures_[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
  last_inference_ms_.store(NowMillisecondsSinceEpoch(),
                           std::memory_order_relaxed);
}

void InferenceStatistics::RecordExecution(int64_t batch_size,
                                          Nanoseconds compute_input,
                                          Nanoseconds compute_infer,
                                          Nanoseconds compute_output) {
  execution_count_.fetch_add(1, std::memory_order_relaxed);
  batch_rows_.Observe(static_cast<uint64_t>(batch_size));
  std::lock_guard<std::mutex> lock(batch_mutex_);
  BatchDurations& batch = by_batch_size_[batch_size];
  ++batch.count;
  batch.input_ns += static_cast<uint64_t>(compute_input.count());
  batch.infer_ns += static_cast<uint64_t>(compute_infer.count());
  batch.output_ns += static_cast<uint64_t>(compute_output.count());
}

InferenceStatistics::Totals InferenceStatistics::Read() const {
  Totals totals;
  totals.success = success_.count.load(std::memory_order_relaxed);
  for (int reason = 0; reason < kFailureReasons; ++reason) {
    totals.failure[reason] = failures_[reason].load(std::memory_order_relaxed);
  }
  totals.inference_count = inference_count_.load(std::memory_order_relaxed);
  totals.execution_count = execution_count_.load(std::memory_order_relaxed);
  totals.request_ns = success_.ns.load(std::memory_order_relaxed);
  totals.queue_ns = queue_.ns.load(std::memory_order_relaxed);
  totals.compute_input_ns = compute_input_.ns.load(std::memory_order_relaxed);
  totals.compute_infer_ns = compute_infer_.ns.load(std::memory_order_relaxed);
  totals.compute_output_ns = compute_output_.ns.load(std::memory_order_relaxed);
  totals.forward_request_ns = forward_request_ns_.Read();
  totals.backward_request_ns = backward_request_ns_.Read();
  totals.batch_rows = batch_rows_.Read();
  return totals;
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
