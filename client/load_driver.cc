#include "client/load_driver.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/load_calls.h"
#include "client/load_http_calls.h"

namespace reluserve::load_internal {
namespace {

// After a step, answers may take the request timeout plus this to arrive.
constexpr auto kDrainGrace = std::chrono::seconds(2);
// After cancelling, gRPC finishes calls promptly; this long at most.
constexpr auto kCancelGrace = std::chrono::seconds(5);
// How often stream requests are checked against the timeout, at most.
constexpr auto kStaleCheck = std::chrono::milliseconds(100);

}  // namespace

std::optional<inference::ModelStatistics> StatsProbe::Fetch(
    std::string& note, std::string& notice) {
  constexpr char kNone[] = "server does not implement ModelStatistics";
  if (unimplemented_) {
    note = kNone;
    return std::nullopt;
  }
  const absl::StatusOr<inference::ModelStatisticsResponse> response =
      client_->ModelStatistics();
  // A REST server without the statistics extension has no such path.
  const absl::StatusCode none = options_.protocol == Protocol::kHttp
                                    ? absl::StatusCode::kNotFound
                                    : absl::StatusCode::kUnimplemented;
  if (response.status().code() == none) {
    unimplemented_ = true;
    note = kNone;
    notice = absl::StrCat("ModelStatistics: ", absl::StatusCodeToString(none),
                          " from the server; reporting no server-side time "
                          "split");
    return std::nullopt;
  }
  if (!response.ok()) {
    note = absl::StrCat(
        "ModelStatistics: ", absl::StatusCodeToString(response.status().code()),
        ": ", response.status().message());
    return std::nullopt;
  }
  absl::StatusOr<inference::ModelStatistics> stats = FindModelStatistics(
      *response, options_.model_name, options_.model_version);
  if (!stats.ok()) {
    note = std::string(stats.status().message());
    return std::nullopt;
  }
  return *std::move(stats);
}

Driver::Driver(const LoadOptions& options, std::shared_ptr<Transport> transport,
               Clock::time_point deadline,
               const LoadGenerator::ProgressCallback& progress, int steps,
               const LoadClock& clock)
    : options_(options),
      transport_(std::move(transport)),
      deadline_(deadline),
      progress_(progress),
      steps_(steps),
      clock_(clock),
      run_start_(clock.Now()),
      stats_(options, transport_->statistics) {}

absl::StatusOr<StepResult> Driver::RunStep(int index, bool open_loop,
                                           double level) {
  StepResult result;
  result.index = index;
  result.open_loop = open_loop;
  if (open_loop) {
    result.rate = level;
  } else {
    result.concurrency = static_cast<int>(level);
  }
  index_ = index;
  open_loop_ = open_loop;
  level_ = level;
  StepPolicy policy;
  policy.backoff = options_.backoff;
  policy.gone_after = FromSeconds(options_.server_gone_after_s);
  policy.jitter_seed = options_.seed * 1000003u + index + 1;
  step_ =
      std::make_unique<Step>(transport_, !open_loop, options_.requests,
                             options_.duration_s, deadline_, policy, clock_);
  stream_conns_.assign(options_.channels, nullptr);
  measuring_ = false;

  const Clock::time_point start = clock_.Now();
  step_start_ = start;
  phase_start_ = start;
  if (options_.warmup_s <= 0) BeginMeasure(start, /*load_running=*/false);
  const StopReason stop =
      open_loop ? DriveOpenLoop(start, level) : DriveClosedLoop(start, level);
  step_->EnterDrain(stop);
  for (const auto& stream : step_->Streams()) stream->Close();
  absl::Status drained = Drain();
  if (!drained.ok()) {
    // Calls may still use the step (and, through it, the channels): leak
    // them rather than free them under those calls.
    step_.release();
    stream_conns_.clear();
    return drained;
  }

  step_->Fill(result, options_.batch);
  if (const std::optional<Step::Gone> gone = step_->gone()) {
    result.server_gone_at_s = std::max(0.0, Seconds(gone->since - run_start_));
  }
  FillServerSplit(result);
  step_.reset();
  stream_conns_.clear();
  before_.reset();
  return result;
}

void Driver::FillServerSplit(StepResult& result) {
  CollectBefore(/*block=*/true);
  if (result.server_gone) {
    result.server.note = "not asked: the server went away";
    return;
  }
  if (!before_.has_value()) {
    result.server.note = before_note_;
    return;
  }
  std::string notice;
  std::optional<inference::ModelStatistics> after =
      stats_.Fetch(result.server.note, notice);
  Notice(notice);
  if (!after.has_value()) return;
  absl::StatusOr<ServerStatsDelta> delta = StatsDelta(*before_, *after);
  if (delta.ok()) {
    result.server.available = true;
    result.server.delta = *delta;
  } else {
    result.server.note = std::string(delta.status().message());
  }
}

void Driver::BeginMeasure(Clock::time_point t0, bool load_running) {
  step_->EnterMeasure(t0);
  measuring_ = true;
  phase_start_ = t0;
  before_note_.clear();
  before_notice_.clear();
  if (!load_running) {
    before_ = stats_.Fetch(before_note_, before_notice_);
    Notice(before_notice_);
    return;
  }
  before_future_ = std::async(std::launch::async, [this] {
    return stats_.Fetch(before_note_, before_notice_);
  });
}

void Driver::CollectBefore(bool block) {
  if (!before_future_.valid()) return;
  if (!block && before_future_.wait_for(std::chrono::seconds(0)) !=
                    std::future_status::ready) {
    return;
  }
  before_ = before_future_.get();
  Notice(before_notice_);
}

void Driver::Notice(const std::string& message) {
  if (message.empty() || !progress_) return;
  LoadProgress event;
  event.kind = LoadProgress::Kind::kNotice;
  event.step = index_;
  event.steps = steps_;
  event.message = message;
  progress_(event);
}

void Driver::Tick() {
  if (!progress_) return;
  const Step::Snapshot snapshot = step_->Peek();
  LoadProgress event;
  event.kind = LoadProgress::Kind::kTick;
  event.step = index_;
  event.steps = steps_;
  event.open_loop = open_loop_;
  event.level = level_;
  event.warming_up = snapshot.phase == Phase::kWarmup;
  event.elapsed_s = Seconds(clock_.Now() - phase_start_);
  event.answered = snapshot.answered;
  event.errors = snapshot.errors;
  event.in_flight = snapshot.in_flight;
  if (!event.warming_up && event.elapsed_s > 0) {
    event.requests_per_second = snapshot.successes / event.elapsed_s;
  }
  progress_(event);
}

StopReason Driver::WaitUntil(Clock::time_point until, bool until_idle,
                             bool global_deadline) {
  for (;;) {
    // Housekeeping first: an open loop behind schedule never sleeps.
    const Clock::time_point now = clock_.Now();
    CollectBefore(/*block=*/false);
    if (now >= next_tick_) {
      Tick();
      next_tick_ = now + FromSeconds(options_.progress_interval_s);
    }
    if (options_.stream && now >= next_stale_check_) {
      const Clock::time_point cutoff = now - transport_->timeout;
      for (const auto& stream : step_->Streams()) {
        stream->CancelIfStale(cutoff);
      }
      next_stale_check_ = now + StaleCheckInterval();
    }
    if (global_deadline) {
      if (step_->CheckGone(now)) return StopReason::kServerGone;
      for (const Ticket& ticket :
           step_->ClaimDueRetries(now, /*new_reactor=*/!options_.stream)) {
        StartRequest(ticket);
      }
      if (now >= deadline_) return StopReason::kTimedOut;
    }
    if (now >= until) return StopReason::kFinished;
    if (until_idle && step_->Idle()) return StopReason::kFinished;
    Clock::time_point wake = std::min(until, next_tick_);
    if (global_deadline) wake = std::min({wake, deadline_, step_->NextWake()});
    if (options_.stream) wake = std::min(wake, next_stale_check_);
    step_->WaitUntil(wake, until_idle);
  }
}

Clock::duration Driver::StaleCheckInterval() const {
  return std::clamp<Clock::duration>(transport_->timeout / 4,
                                     std::chrono::milliseconds(1), kStaleCheck);
}

void Driver::StartRequest(const Ticket& ticket) {
  if (transport_->http != nullptr) {
    transport_->http->Start(step_.get(), ticket);
    return;
  }
  if (!options_.stream) {
    StartUnaryCall(step_.get(), ticket);
    return;
  }
  if (!open_loop_) {
    StreamConn::Open(step_.get(), ticket.channel, ticket);
    return;
  }
  // Open loop: one stream per channel, reopened if it ended.
  std::shared_ptr<StreamConn>& stream = stream_conns_[ticket.channel];
  if (stream == nullptr || !stream->Send(ticket)) {
    stream = StreamConn::Open(step_.get(), ticket.channel, ticket);
  }
}

StopReason Driver::DriveClosedLoop(Clock::time_point start,
                                   double concurrency) {
  next_tick_ = start + FromSeconds(options_.progress_interval_s);
  next_stale_check_ = start + StaleCheckInterval();
  for (int slot = 0; slot < static_cast<int>(concurrency); ++slot) {
    // Unary calls count themselves; streams count in Open().
    std::optional<Ticket> ticket =
        step_->Claim(slot % options_.channels, !options_.stream);
    if (!ticket.has_value()) break;
    StartRequest(*ticket);
  }
  if (!Measuring()) {
    const StopReason warmed =
        WaitUntil(start + FromSeconds(options_.warmup_s), false);
    if (warmed != StopReason::kFinished) return warmed;
    BeginMeasure(clock_.Now(), /*load_running=*/true);
  }
  if (options_.requests > 0) {
    return WaitUntil(Clock::time_point::max(), /*until_idle=*/true);
  }
  return WaitUntil(phase_start_ + FromSeconds(options_.duration_s), false);
}

StopReason Driver::DriveOpenLoop(Clock::time_point start, double rate) {
  next_tick_ = start + FromSeconds(options_.progress_interval_s);
  next_stale_check_ = start + StaleCheckInterval();
  ArrivalSchedule schedule(options_.arrivals, rate,
                           options_.seed * 1000003u + index_);
  const Clock::time_point warmup_end = start + FromSeconds(options_.warmup_s);
  for (int64_t arrival = 0;; ++arrival) {
    const Clock::time_point due = start + FromSeconds(schedule.Next());
    if (!Measuring() && due >= warmup_end) {
      const StopReason warmed = WaitUntil(warmup_end, false);
      if (warmed != StopReason::kFinished) return warmed;
      BeginMeasure(warmup_end, /*load_running=*/true);
    }
    if (Measuring()) {
      const Clock::time_point end =
          phase_start_ + FromSeconds(options_.duration_s);
      // Behind schedule past the end, later arrivals could not be
      // answered inside the window any more.
      if (options_.requests > 0 ? step_->AllCountedArrived()
                                : due >= end || clock_.Now() >= end) {
        return StopReason::kFinished;
      }
    }
    const StopReason waited = WaitUntil(due, false);
    if (waited != StopReason::kFinished) return waited;
    const bool late = clock_.Now() - due > kLoadLateAfter;
    const int channel = static_cast<int>(arrival % options_.channels);
    std::optional<Ticket> ticket = step_->ClaimScheduled(
        channel, !options_.stream, options_.max_in_flight, late);
    if (ticket.has_value()) StartRequest(*ticket);
  }
}

absl::Status Driver::Drain() {
  // Unary calls end by their deadlines; streams are checked as they go.
  WaitUntil(clock_.Now() + transport_->timeout + kDrainGrace,
            /*until_idle=*/true, /*global_deadline=*/false);
  if (step_->Idle()) return absl::OkStatus();
  for (const auto& stream : step_->Streams()) stream->Cancel();
  if (transport_->http != nullptr) transport_->http->AbortAll();
  step_->WaitUntil(clock_.Now() + kCancelGrace);
  if (step_->Idle()) return absl::OkStatus();
  return absl::InternalError(
      "calls still unfinished after cancelling them; giving up");
}

}  // namespace reluserve::load_internal
