#include "client/load_step.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace reluserve::load_internal {

double Seconds(Clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

Clock::duration FromSeconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(seconds));
}

std::chrono::system_clock::time_point ToSystem(Clock::time_point when,
                                               const LoadClock& clock) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             when - clock.Now());
}

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

Outcome FromStatus(const grpc::Status& status) {
  return {false, CodeName(status.error_code()), status.error_message()};
}

Outcome FromStatus(const absl::Status& status) {
  if (status.ok()) return {};
  return {false, absl::StatusCodeToString(status.code()),
          std::string(status.message())};
}

Outcome Check(const ScannedResponse& response, uint64_t id, int expected) {
  if (!response.parsed) return {false, "INTERNAL", "malformed response"};
  if (!response.error_message.empty()) {
    return {false, StreamErrorCode(response.error_message),
            response.error_message};
  }
  if (response.id != std::to_string(id)) {
    return {false, "INTERNAL",
            absl::StrCat("response id \"", response.id, "\", expected \"", id,
                         "\" (out of order, or the id was not echoed)")};
  }
  if (response.outputs != expected || response.raw_outputs != expected) {
    return {false, "INTERNAL",
            absl::StrCat("response has ", response.outputs, " outputs and ",
                         response.raw_outputs,
                         " raw_output_contents, expected ", expected)};
  }
  return {};
}

namespace {

bool IsUnavailable(const Outcome& outcome) {
  return !outcome.ok && outcome.code == "UNAVAILABLE";
}

}  // namespace

Step::Step(std::shared_ptr<Transport> transport, bool closed_loop,
           int64_t requests, double duration_s, Clock::time_point deadline,
           StepPolicy policy, const LoadClock& clock)
    : transport_(std::move(transport)),
      closed_loop_(closed_loop),
      requests_(requests),
      duration_(FromSeconds(duration_s)),
      deadline_(deadline),
      stream_deadline_(ToSystem(deadline, clock)),
      policy_(policy),
      clock_(clock),
      jitter_(policy.jitter_seed),
      streak_(policy.gone_after) {}

void Step::EnterMeasure(Clock::time_point t0) {
  std::lock_guard<std::mutex> lock(mu_);
  phase_ = Phase::kMeasure;
  measured_ = true;
  t0_ = t0;
  t_end_ = requests_ > 0 ? Clock::time_point::max()
                         : std::min(t0 + duration_, deadline_);
}

void Step::EnterDrain(StopReason reason) {
  std::lock_guard<std::mutex> lock(mu_);
  phase_ = Phase::kDrain;
  retries_.clear();
  if (reason == StopReason::kTimedOut) timed_out_ = true;
  if (reason != StopReason::kFinished) {
    abort_time_ = std::min(clock_.Now(), deadline_);
    // Answers still arriving are past the window.
    if (requests_ == 0 && measured_) t_end_ = std::min(t_end_, abort_time_);
  }
  cv_.notify_all();
}

std::optional<Ticket> Step::Claim(int channel, bool new_reactor) {
  std::lock_guard<std::mutex> lock(mu_);
  return ClaimLocked(channel, new_reactor);
}

std::optional<Ticket> Step::ClaimScheduled(int channel, bool new_reactor,
                                           int max_in_flight, bool late) {
  const Clock::time_point now = clock_.Now();
  std::lock_guard<std::mutex> lock(mu_);
  const bool measuring = phase_ == Phase::kMeasure;
  if (measuring && late) ++late_;
  const bool held_back = now < gate_until_;
  if (held_back || in_flight_ >= max_in_flight) {
    if (measuring) ++dropped_;
    if (measuring && held_back) ++held_back_;
    if (measuring && requests_ > 0) ++counted_sent_;
    return std::nullopt;
  }
  Ticket ticket = NewTicketLocked(channel, new_reactor);
  if (measuring && requests_ > 0) {
    ticket.counted = true;
    ++counted_sent_;
  }
  return ticket;
}

bool Step::AllCountedArrived() {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_ > 0 && phase_ == Phase::kMeasure &&
         counted_sent_ >= requests_;
}

std::optional<Ticket> Step::Record(const Ticket& ticket, Clock::time_point sent,
                                   const Outcome& outcome, bool replace,
                                   bool new_reactor) {
  const Clock::time_point done = clock_.Now();
  std::lock_guard<std::mutex> lock(mu_);
  --in_flight_;
  const bool measured =
      requests_ > 0 ? ticket.counted
                    : phase_ != Phase::kWarmup && done >= t0_ && done <= t_end_;
  if (measured) {
    if (outcome.ok) {
      latencies_ms_.push_back(
          std::chrono::duration<double, std::milli>(done - sent).count());
    } else {
      ++errors_by_code_[outcome.code];
      first_error_.emplace(outcome.code, outcome.message);
    }
    last_answer_ = done;
  }
  const bool unavailable = IsUnavailable(outcome);
  const Clock::time_point decision = streak_.decision_time();
  streak_.Observe(unavailable, done, outcome.message);
  UpdateGoneLocked(done);
  // The driver sleeps at most until the streak would mean the server went
  // away.
  if (streak_.decision_time() < decision) cv_.notify_all();
  if (!closed_loop_) {
    if (!unavailable) {
      gate_attempt_ = 0;
    } else if (done >= gate_until_) {
      gate_until_ = done + JitteredBackoffLocked(++gate_attempt_);
    }
  }
  if (!replace) return std::nullopt;
  if (unavailable) {
    if (phase_ != Phase::kDrain && !gone_.has_value()) {
      const int attempt = ticket.attempt + 1;
      retries_.emplace(done + JitteredBackoffLocked(attempt),
                       Retry{ticket.channel, attempt});
      cv_.notify_all();
    }
    return std::nullopt;
  }
  return ClaimLocked(ticket.channel, new_reactor);
}

void Step::Abandon(const Ticket& ticket) {
  std::lock_guard<std::mutex> lock(mu_);
  --in_flight_;
  if (ticket.counted) --counted_sent_;
}

void Step::RecordStray() {
  std::lock_guard<std::mutex> lock(mu_);
  if (phase_ == Phase::kMeasure) {
    ++errors_by_code_["INTERNAL"];
    first_error_.emplace("INTERNAL", "a stream response to no request");
  }
}

std::vector<Ticket> Step::ClaimDueRetries(Clock::time_point now,
                                          bool new_reactor) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Ticket> tickets;
  while (!retries_.empty() && retries_.begin()->first <= now) {
    const Retry retry = retries_.begin()->second;
    retries_.erase(retries_.begin());
    std::optional<Ticket> ticket = ClaimLocked(retry.channel, new_reactor);
    if (!ticket.has_value()) continue;
    ticket->attempt = retry.attempt;
    tickets.push_back(*ticket);
  }
  return tickets;
}

Clock::time_point Step::NextWake() {
  std::lock_guard<std::mutex> lock(mu_);
  Clock::time_point wake = Clock::time_point::max();
  if (phase_ == Phase::kDrain || gone_.has_value()) return wake;
  if (!retries_.empty()) wake = retries_.begin()->first;
  return std::min(wake, streak_.decision_time());
}

bool Step::CheckGone(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  UpdateGoneLocked(now);
  return gone_.has_value();
}

std::optional<Step::Gone> Step::gone() {
  std::lock_guard<std::mutex> lock(mu_);
  return gone_;
}

void Step::AddReactor() {
  std::lock_guard<std::mutex> lock(mu_);
  ++reactors_;
}

void Step::ReactorDone() {
  std::lock_guard<std::mutex> lock(mu_);
  if (--reactors_ == 0) cv_.notify_all();
}

void Step::Register(const std::shared_ptr<StreamConn>& stream) {
  std::lock_guard<std::mutex> lock(mu_);
  streams_.emplace(stream.get(), stream);
}

std::shared_ptr<StreamConn> Step::Unregister(StreamConn* stream) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = streams_.find(stream);
  if (it == streams_.end()) return nullptr;
  std::shared_ptr<StreamConn> owned = std::move(it->second);
  streams_.erase(it);
  return owned;
}

std::vector<std::shared_ptr<StreamConn>> Step::Streams() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<StreamConn>> streams;
  streams.reserve(streams_.size());
  for (const auto& [raw, stream] : streams_) streams.push_back(stream);
  return streams;
}

void Step::WaitUntil(Clock::time_point when, bool until_idle) {
  std::unique_lock<std::mutex> lock(mu_);
  clock_.WaitUntil(lock, cv_, when, [&] {
    if (until_idle && IdleLocked()) return true;
    // Draining, nothing is sent and the server is not judged any more.
    if (phase_ == Phase::kDrain) return false;
    if (gone_.has_value()) return true;
    if (!retries_.empty() && retries_.begin()->first < when) return true;
    return streak_.decision_time() < when;
  });
}

bool Step::Idle() {
  std::lock_guard<std::mutex> lock(mu_);
  return IdleLocked();
}

Step::Snapshot Step::Peek() {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t errors = 0;
  for (const auto& [code, count] : errors_by_code_) errors += count;
  const int64_t successes = static_cast<int64_t>(latencies_ms_.size());
  return {phase_, successes + errors, errors, successes, in_flight_};
}

void Step::Fill(StepResult& result, int64_t batch) {
  std::lock_guard<std::mutex> lock(mu_);
  result.timed_out = timed_out_;
  result.server_gone = gone_.has_value();
  if (gone_.has_value()) result.server_gone_error = gone_->message;
  Clock::time_point end = t0_;
  if (!measured_) {
    // Cut short during the warm-up: nothing measured.
  } else if (requests_ > 0) {
    end = last_answer_ > t0_ ? last_answer_ : clock_.Now();
    if (gone_.has_value()) end = std::max(t0_, abort_time_);
  } else {
    end = t_end_;
  }
  result.seconds = std::max(0.0, Seconds(end - t0_));
  result.successes = static_cast<int64_t>(latencies_ms_.size());
  result.errors_by_code = errors_by_code_;
  result.first_error = first_error_;
  result.errors = 0;
  for (const auto& [code, count] : errors_by_code_) result.errors += count;
  result.requests = result.successes + result.errors;
  result.dropped = dropped_;
  result.late = late_;
  result.held_back = held_back_;
  result.requests_per_second =
      result.seconds > 0 ? result.successes / result.seconds : 0.0;
  result.rows_per_second =
      result.requests_per_second * static_cast<double>(batch);
  result.latency_ms = ComputeLatencyStats(latencies_ms_);
}

Ticket Step::NewTicketLocked(int channel, bool new_reactor) {
  ++in_flight_;
  if (new_reactor) ++reactors_;
  return {transport_->next_id.fetch_add(1), channel, false, 0};
}

std::optional<Ticket> Step::ClaimLocked(int channel, bool new_reactor) {
  if (phase_ == Phase::kDrain || gone_.has_value()) return std::nullopt;
  bool counted = false;
  if (phase_ == Phase::kMeasure) {
    if (requests_ > 0) {
      if (counted_sent_ >= requests_) return std::nullopt;
      ++counted_sent_;
      counted = true;
    } else if (clock_.Now() >= t_end_) {
      return std::nullopt;
    }
  }
  Ticket ticket = NewTicketLocked(channel, new_reactor);
  ticket.counted = counted;
  return ticket;
}

Clock::duration Step::JitteredBackoffLocked(int attempt) {
  const double uniform =
      std::uniform_real_distribution<double>(0.0, 1.0)(jitter_);
  return BackoffDelay(policy_.backoff, attempt, uniform);
}

void Step::UpdateGoneLocked(Clock::time_point now) {
  if (gone_.has_value() || phase_ == Phase::kDrain || !streak_.Gone(now)) {
    return;
  }
  gone_ = Gone{streak_.since(), streak_.first_message()};
  retries_.clear();
  cv_.notify_all();
}

}  // namespace reluserve::load_internal
