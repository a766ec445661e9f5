#include "client/load_http_calls.h"

#include <optional>
#include <utility>

#include "absl/status/status.h"

namespace reluserve::load_internal {

Outcome CheckHttp(const HttpInferSummary& summary, uint64_t id, int expected) {
  // Every output the summary counts carries its data, binary or JSON.
  ScannedResponse scanned;
  scanned.parsed = true;
  scanned.id = summary.id;
  scanned.outputs = summary.outputs;
  scanned.raw_outputs = summary.outputs;
  scanned.raw_bytes = summary.binary_bytes;
  return Check(scanned, id, expected);
}

HttpCalls::~HttpCalls() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  AbortAll();
  // Nothing adds workers any more: stopping_ is set.
  for (const auto& worker : workers_) worker->thread.join();
}

void HttpCalls::Start(Step* step, const Ticket& ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  jobs_.push_back({step, ticket});
  if (idle_ < jobs_.size() &&
      workers_.size() < static_cast<size_t>(spec_.max_threads)) {
    auto worker = std::make_unique<Worker>();
    worker->connection = std::make_unique<HttpConnection>(
        spec_.target, spec_.timeout, spec_.max_attempts, spec_.security);
    const HttpConnection& connection = *worker->connection;
    worker->thread = std::thread([this, &connection] { Work(connection); });
    workers_.push_back(std::move(worker));
  }
  cv_.notify_one();
}

void HttpCalls::AbortAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& worker : workers_) worker->connection->Abort();
}

void HttpCalls::Work(const HttpConnection& connection) {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    ++idle_;
    cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    --idle_;
    if (stopping_) return;
    const Job job = jobs_.front();
    jobs_.pop_front();
    lock.unlock();
    Run(connection, job);
    lock.lock();
  }
}

void HttpCalls::Run(const HttpConnection& connection, Job job) const {
  std::optional<Ticket> ticket = job.ticket;
  Step* const step = job.step;
  while (ticket.has_value()) {
    const Clock::time_point sent = step->clock().Now();
    const Outcome outcome = Send(connection, ticket->id);
    // A replacement is counted as a call before this one is done, so the
    // step never looks idle in between.
    const std::optional<Ticket> next = step->Record(
        *ticket, sent, outcome, step->closed_loop(), /*new_reactor=*/true);
    // Without `next`, the last touch: the driver may now free `step`.
    step->ReactorDone();
    ticket = next;
  }
}

Outcome HttpCalls::Send(const HttpConnection& connection, uint64_t id) const {
  const absl::StatusOr<HttpAnswer> answer =
      connection.PostInfer(spec_.request, std::to_string(id));
  if (!answer.ok()) return FromStatus(answer.status());
  if (absl::Status error = HttpError(answer->status, answer->body);
      !error.ok()) {
    return FromStatus(error);
  }
  const absl::StatusOr<HttpInferSummary> summary =
      SummarizeHttpInferResponse(answer->infer_response());
  if (!summary.ok()) return FromStatus(summary.status());
  return CheckHttp(*summary, id, spec_.expected_outputs);
}

}  // namespace reluserve::load_internal
