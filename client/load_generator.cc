#include "client/load_generator.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "grpc/grpc.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_callback.h"

namespace reluserve {
namespace {

using Clock = std::chrono::steady_clock;

// A request sent later than this after its scheduled time counts as late.
constexpr auto kLateAfter = std::chrono::milliseconds(1);
// After a step, answers may take the request timeout plus this to arrive.
constexpr auto kDrainGrace = std::chrono::seconds(2);
// After cancelling, gRPC finishes calls promptly; this long at most.
constexpr auto kCancelGrace = std::chrono::seconds(5);
// How often stream requests are checked against the timeout, at most.
constexpr auto kStaleCheck = std::chrono::milliseconds(100);
// Connecting and metadata get at least this long, whatever --timeout-ms;
// statistics calls at least kStatsDeadline.
constexpr auto kControlDeadline = std::chrono::seconds(1);
constexpr auto kStatsDeadline = std::chrono::seconds(5);

// Static storage: gRPC may keep the method name's pointer for the call.
const std::string& InferMethod() {
  static const std::string* method =
      new std::string("/inference.GRPCInferenceService/ModelInfer");
  return *method;
}
const std::string& StreamMethod() {
  static const std::string* method =
      new std::string("/inference.GRPCInferenceService/ModelStreamInfer");
  return *method;
}

double Seconds(Clock::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

Clock::duration FromSeconds(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(seconds));
}

std::chrono::system_clock::time_point ToSystem(Clock::time_point when) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             when - Clock::now());
}

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

// What every call of a run shares; immutable once built but for the ids.
struct Transport {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  grpc::Slice body;  // the serialized request, without id
  int expected_outputs = 1;
  std::chrono::milliseconds timeout{0};
  std::atomic<uint64_t> next_id{1};
};

// One request: its id, its channel, and whether it is one of the `requests`
// counted after the warm-up.
struct Ticket {
  uint64_t id = 0;
  int channel = 0;
  bool counted = false;
};

struct Outcome {
  bool ok = true;
  std::string code;  // gRPC code name when not ok
  std::string message;
};

Outcome FromStatus(const grpc::Status& status) {
  return {false, CodeName(status.error_code()), status.error_message()};
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

enum class Phase { kWarmup, kMeasure, kDrain };

class StreamConn;

// One step's state, shared by the driver (Run()'s thread) and gRPC's
// callback threads. The driver owns it and keeps it until every call and
// stream has finished; they point to it without owning it, so that the last
// reference to the channels is never dropped on a gRPC callback thread
// (destroying a channel from its own callback thread breaks gRPC).
//
// Thread safety: every public method may be called from any thread; all
// state is guarded by mu_. No gRPC call is ever started with mu_ held (a
// reaction may run inline and take it).
class Step {
 public:
  // `deadline`: the run's global deadline, where measuring stops at the
  // latest.
  Step(std::shared_ptr<Transport> transport, bool closed_loop, int64_t requests,
       double duration_s, Clock::time_point deadline)
      : transport_(std::move(transport)),
        closed_loop_(closed_loop),
        requests_(requests),
        duration_(FromSeconds(duration_s)),
        deadline_(deadline),
        stream_deadline_(ToSystem(deadline)) {}

  Transport& transport() const { return *transport_; }
  bool closed_loop() const { return closed_loop_; }
  std::chrono::system_clock::time_point stream_deadline() const {
    return stream_deadline_;
  }

  void EnterMeasure(Clock::time_point t0) {
    std::lock_guard<std::mutex> lock(mu_);
    phase_ = Phase::kMeasure;
    measured_ = true;
    t0_ = t0;
    t_end_ = requests_ > 0 ? Clock::time_point::max()
                           : std::min(t0 + duration_, deadline_);
  }

  // No more requests; `timed_out` marks the step as cut short.
  void EnterDrain(bool timed_out) {
    std::lock_guard<std::mutex> lock(mu_);
    phase_ = Phase::kDrain;
    timed_out_ = timed_out_ || timed_out;
    if (timed_out) abort_time_ = std::min(Clock::now(), deadline_);
  }

  // Closed loop: the ticket of the next request on `channel`, or nothing when
  // the step sends no more. `new_reactor` counts a call about to start.
  std::optional<Ticket> Claim(int channel, bool new_reactor) {
    std::lock_guard<std::mutex> lock(mu_);
    return ClaimLocked(channel, new_reactor);
  }

  // Open loop: the ticket of a request due now, or nothing when
  // `max_in_flight` requests are unanswered (then a dropped one).
  std::optional<Ticket> ClaimScheduled(int channel, bool new_reactor,
                                       int max_in_flight, bool late) {
    std::lock_guard<std::mutex> lock(mu_);
    const bool measuring = phase_ == Phase::kMeasure;
    if (measuring && late) ++late_;
    if (in_flight_ >= max_in_flight) {
      if (measuring) ++dropped_;
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

  // Open loop with `requests`: every counted arrival sent or dropped.
  bool AllCountedArrived() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_ > 0 && phase_ == Phase::kMeasure &&
           counted_sent_ >= requests_;
  }

  // Records the answer to `ticket`; with `replace` (closed loop), also
  // claims the next request on the same channel.
  std::optional<Ticket> Record(const Ticket& ticket, Clock::time_point sent,
                               const Outcome& outcome, bool replace,
                               bool new_reactor) {
    const Clock::time_point done = Clock::now();
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
    const bool measured = requests_ > 0 ? ticket.counted
                                        : phase_ != Phase::kWarmup &&
                                              done >= t0_ && done <= t_end_;
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
    if (!replace) return std::nullopt;
    return ClaimLocked(ticket.channel, new_reactor);
  }

  // A claimed request that was never sent.
  void Abandon(const Ticket& ticket) {
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
    if (ticket.counted) --counted_sent_;
  }

  // A stream answer with no request left to match it.
  void RecordStray() {
    std::lock_guard<std::mutex> lock(mu_);
    if (phase_ == Phase::kMeasure) {
      ++errors_by_code_["INTERNAL"];
      first_error_.emplace("INTERNAL", "a stream response to no request");
    }
  }

  void AddReactor() {
    std::lock_guard<std::mutex> lock(mu_);
    ++reactors_;
  }
  void ReactorDone() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--reactors_ == 0) cv_.notify_all();
  }

  void Register(const std::shared_ptr<StreamConn>& stream);
  std::shared_ptr<StreamConn> Unregister(StreamConn* stream);
  std::vector<std::shared_ptr<StreamConn>> Streams();

  // Sleeps until `when` or until no call or stream is left.
  void WaitUntil(Clock::time_point when) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, when, [this] { return reactors_ == 0; });
  }
  bool Idle() {
    std::lock_guard<std::mutex> lock(mu_);
    return reactors_ == 0;
  }

  struct Snapshot {
    Phase phase;
    int64_t answered, errors, successes, in_flight;
  };
  Snapshot Peek() {
    std::lock_guard<std::mutex> lock(mu_);
    int64_t errors = 0;
    for (const auto& [code, count] : errors_by_code_) errors += count;
    const int64_t successes = static_cast<int64_t>(latencies_ms_.size());
    return {phase_, successes + errors, errors, successes, in_flight_};
  }

  // The measured numbers; call when Idle().
  void Fill(StepResult& result, int64_t batch) {
    std::lock_guard<std::mutex> lock(mu_);
    result.timed_out = timed_out_;
    Clock::time_point end = t0_;
    if (!measured_) {
      // Cut short during the warm-up: nothing measured.
    } else if (requests_ > 0) {
      end = last_answer_ > t0_ ? last_answer_ : Clock::now();
    } else {
      end = timed_out_ ? std::min(abort_time_, t_end_) : t_end_;
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
    result.requests_per_second =
        result.seconds > 0 ? result.successes / result.seconds : 0.0;
    result.rows_per_second =
        result.requests_per_second * static_cast<double>(batch);
    result.latency_ms = ComputeLatencyStats(latencies_ms_);
  }

 private:
  Ticket NewTicketLocked(int channel, bool new_reactor) {
    ++in_flight_;
    if (new_reactor) ++reactors_;
    return {transport_->next_id.fetch_add(1), channel, false};
  }

  std::optional<Ticket> ClaimLocked(int channel, bool new_reactor) {
    if (phase_ == Phase::kDrain) return std::nullopt;
    bool counted = false;
    if (phase_ == Phase::kMeasure) {
      if (requests_ > 0) {
        if (counted_sent_ >= requests_) return std::nullopt;
        ++counted_sent_;
        counted = true;
      } else if (Clock::now() >= t_end_) {
        return std::nullopt;
      }
    }
    Ticket ticket = NewTicketLocked(channel, new_reactor);
    ticket.counted = counted;
    return ticket;
  }

  const std::shared_ptr<Transport> transport_;
  const bool closed_loop_;
  const int64_t requests_;
  const Clock::duration duration_;
  const Clock::time_point deadline_;
  const std::chrono::system_clock::time_point stream_deadline_;

  std::mutex mu_;
  std::condition_variable cv_;  // reactors_ reached 0
  Phase phase_ = Phase::kWarmup;
  Clock::time_point t0_, t_end_;
  Clock::time_point abort_time_;
  Clock::time_point last_answer_;
  bool timed_out_ = false;
  bool measured_ = false;     // the measurement phase has begun
  int64_t counted_sent_ = 0;  // requests mode: counted requests claimed
  int64_t in_flight_ = 0;     // requests sent and not answered
  int64_t reactors_ = 0;      // calls and streams not yet done
  int64_t dropped_ = 0, late_ = 0;
  std::vector<double> latencies_ms_;
  std::map<std::string, int64_t> errors_by_code_;
  std::map<std::string, std::string> first_error_;
  std::unordered_map<StreamConn*, std::shared_ptr<StreamConn>> streams_;
};

// One ModelInfer call; deletes itself when done.
class UnaryCall final : public grpc::ClientUnaryReactor {
 public:
  UnaryCall(Step* step, const Ticket& ticket) : step_(step), ticket_(ticket) {}

  // The step has counted this call (Claim with new_reactor).
  static void Start(Step* step, const Ticket& ticket) {
    auto* call = new UnaryCall(step, ticket);
    Transport& transport = call->step_->transport();
    call->context_.set_deadline(std::chrono::system_clock::now() +
                                transport.timeout);
    call->request_ = RequestWithId(transport.body, ticket.id);
    transport.stubs[ticket.channel]->PrepareUnaryCall(
        &call->context_, InferMethod(), grpc::StubOptions(), &call->request_,
        &call->response_, call);
    call->sent_ = Clock::now();
    call->StartCall();
  }

  void OnDone(const grpc::Status& status) override {
    const Outcome outcome =
        status.ok() ? Check(ScanResponse(response_, /*stream=*/false),
                            ticket_.id, step_->transport().expected_outputs)
                    : FromStatus(status);
    const std::optional<Ticket> next =
        step_->Record(ticket_, sent_, outcome, step_->closed_loop(),
                      /*new_reactor=*/true);
    // Replace before letting go, so the step never looks idle in between.
    if (next.has_value()) Start(step_, *next);
    // Deleting the context drops its channel reference while the driver
    // still holds the channels (see StreamConn::OnDone).
    Step* const step = step_;
    delete this;
    step->ReactorDone();  // the last touch: the driver may now free `step`
  }

 private:
  Step* const step_;
  const Ticket ticket_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  Clock::time_point sent_;
};

// One ModelStreamInfer stream carrying any number of requests; responses
// are matched to requests in order. Owned by the step's registry from
// Open() until OnDone (and by whoever else holds a shared_ptr to it).
//
// Thread safety: Send(), Close() and Cancel*() may be called from any
// thread; mu_ guards the queues and flags and is never held while starting
// a gRPC operation.
class StreamConn final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamConn(Step* step, int channel) : step_(step), channel_(channel) {}

  // Opens a stream; with `first`, sends that request on it.
  static std::shared_ptr<StreamConn> Open(Step* step, int channel,
                                          const std::optional<Ticket>& first) {
    auto stream = std::make_shared<StreamConn>(step, channel);
    step->AddReactor();
    step->Register(stream);
    stream->context_.set_deadline(step->stream_deadline());
    step->transport().stubs[channel]->PrepareBidiStreamingCall(
        &stream->context_, StreamMethod(), grpc::StubOptions(), stream.get());
    // Until Close(), so Send() may start writes from outside reactions.
    stream->AddHold();
    stream->StartRead(&stream->read_);
    // Before StartCall no reaction can close the stream: this Send succeeds.
    if (first.has_value()) stream->Send(*first);
    stream->StartCall();
    return stream;
  }

  // Queues the request; false when the stream is closing (not sent).
  bool Send(const Ticket& ticket) {
    const grpc::ByteBuffer* to_write = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_) return false;
      outstanding_.push_back({ticket, Clock::now()});
      writes_.push_back(RequestWithId(step_->transport().body, ticket.id));
      if (!writing_) {
        writing_ = true;
        to_write = &writes_.front();
      }
    }
    if (to_write != nullptr) StartWrite(to_write);
    return true;
  }

  // No more requests: half-closes once the queued ones are written.
  void Close() {
    bool writes_done = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_) return;
      closing_ = true;
      if (!writing_ && !writes_done_) writes_done = writes_done_ = true;
    }
    if (writes_done) StartWritesDone();
    RemoveHold();
  }

  bool closing() {
    std::lock_guard<std::mutex> lock(mu_);
    return closing_;
  }

  // Cancels the stream when its oldest request was sent before `cutoff`;
  // its unanswered requests then count as DEADLINE_EXCEEDED.
  void CancelIfStale(Clock::time_point cutoff) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (outstanding_.empty() || outstanding_.front().sent >= cutoff) return;
      timed_out_ = true;
    }
    context_.TryCancel();
  }

  void Cancel() { context_.TryCancel(); }

  void OnWriteDone(bool ok) override {
    const grpc::ByteBuffer* to_write = nullptr;
    bool writes_done = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writes_.pop_front();
      if (!ok) {
        // The stream is broken; reads fail next and OnDone counts the rest.
        writes_.clear();
        writing_ = false;
        return;
      }
      if (!writes_.empty()) {
        to_write = &writes_.front();
      } else {
        writing_ = false;
        if (closing_ && !writes_done_) writes_done = writes_done_ = true;
      }
    }
    if (to_write != nullptr) StartWrite(to_write);
    if (writes_done) StartWritesDone();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Close();
      return;
    }
    const ScannedResponse response = ScanResponse(read_, /*stream=*/true);
    std::optional<Pending> pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!outstanding_.empty()) {
        pending = outstanding_.front();
        outstanding_.pop_front();
      }
    }
    if (!pending.has_value()) {
      step_->RecordStray();
    } else {
      Outcome outcome = Check(response, pending->ticket.id,
                              step_->transport().expected_outputs);
      // A stream has no per-message deadline: enforce it here, as gRPC does
      // for unary calls.
      if (outcome.ok &&
          Clock::now() - pending->sent > step_->transport().timeout) {
        outcome = {false, "DEADLINE_EXCEEDED",
                   "stream response arrived after the timeout"};
      }
      const std::optional<Ticket> next =
          step_->Record(pending->ticket, pending->sent, outcome,
                        step_->closed_loop(), /*new_reactor=*/false);
      if (next.has_value()) {
        if (!Send(*next)) step_->Abandon(*next);
      } else if (step_->closed_loop()) {
        Close();
      }
    }
    StartRead(&read_);
  }

  void OnDone(const grpc::Status& status) override {
    // Keeps this object alive until released below.
    std::shared_ptr<StreamConn> self = step_->Unregister(this);
    std::deque<Pending> unanswered;
    bool timed_out;
    {
      std::lock_guard<std::mutex> lock(mu_);
      unanswered.swap(outstanding_);
      timed_out = timed_out_;
    }
    Outcome outcome;
    if (timed_out) {
      outcome = {false, "DEADLINE_EXCEEDED",
                 "no stream response within the timeout; stream cancelled"};
    } else if (!status.ok()) {
      outcome = FromStatus(status);
    } else {
      outcome = {false, "INTERNAL", "the stream ended without a response"};
    }
    std::optional<Ticket> next;
    for (const Pending& pending : unanswered) {
      // A closed-loop slot lost its request with the stream: reopen it.
      const bool replace = step_->closed_loop() && !next.has_value();
      std::optional<Ticket> claimed =
          step_->Record(pending.ticket, pending.sent, outcome, replace,
                        /*new_reactor=*/false);
      if (claimed.has_value()) next = claimed;
    }
    if (next.has_value()) Open(step_, channel_, next);
    // Our context holds a channel reference. Release it (and maybe this
    // object) before the driver may free the channels: their last reference
    // must not be dropped on a gRPC callback thread (grpc/grpc#32584).
    Step* const step = step_;
    self.reset();
    step->ReactorDone();
  }

 private:
  struct Pending {
    Ticket ticket;
    Clock::time_point sent;
  };

  Step* const step_;
  const int channel_;
  grpc::ClientContext context_;
  grpc::ByteBuffer read_;  // only the read in progress
  std::mutex mu_;
  std::deque<Pending> outstanding_;      // oldest first; guarded
  std::deque<grpc::ByteBuffer> writes_;  // front is being written; guarded
  bool writing_ = false;                 // guarded
  bool closing_ = false;                 // guarded
  bool writes_done_ = false;             // guarded
  bool timed_out_ = false;               // guarded
};

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

// The ModelStatistics snapshots around each step.
class StatsProbe {
 public:
  StatsProbe(const LoadOptions& options, std::shared_ptr<grpc::Channel> channel)
      : options_(options),
        stub_(inference::GRPCInferenceService::NewStub(std::move(channel))) {}

  // Nothing when statistics are unavailable; `note` says why, and
  // `notice` is set the first time the server says UNIMPLEMENTED.
  std::optional<inference::ModelStatistics> Fetch(std::string& note,
                                                  std::string& notice) {
    if (unimplemented_) {
      note = "server does not implement ModelStatistics";
      return std::nullopt;
    }
    grpc::ClientContext context;
    context.set_deadline(
        std::chrono::system_clock::now() +
        std::max<std::chrono::milliseconds>(options_.timeout, kStatsDeadline));
    inference::ModelStatisticsRequest request;
    request.set_name(options_.model_name);
    request.set_version(options_.model_version);
    inference::ModelStatisticsResponse response;
    const grpc::Status status =
        stub_->ModelStatistics(&context, request, &response);
    if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      unimplemented_ = true;
      note = "server does not implement ModelStatistics";
      notice =
          "ModelStatistics: UNIMPLEMENTED by the server; reporting no "
          "server-side time split";
      return std::nullopt;
    }
    if (!status.ok()) {
      note = absl::StrCat("ModelStatistics: ", CodeName(status.error_code()),
                          ": ", status.error_message());
      return std::nullopt;
    }
    absl::StatusOr<inference::ModelStatistics> stats = FindModelStatistics(
        response, options_.model_name, options_.model_version);
    if (!stats.ok()) {
      note = std::string(stats.status().message());
      return std::nullopt;
    }
    return *std::move(stats);
  }

 private:
  const LoadOptions& options_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  bool unimplemented_ = false;
};

// One Run(): the steps one after another.
class Driver {
 public:
  Driver(const LoadOptions& options, std::shared_ptr<Transport> transport,
         Clock::time_point deadline,
         const LoadGenerator::ProgressCallback& progress, int steps)
      : options_(options),
        transport_(std::move(transport)),
        deadline_(deadline),
        progress_(progress),
        steps_(steps),
        stats_(options, transport_->channels[0]) {}

  absl::StatusOr<StepResult> RunStep(int index, bool open_loop, double level) {
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
    step_ = std::make_unique<Step>(transport_, !open_loop, options_.requests,
                                   options_.duration_s, deadline_);
    stream_conns_.assign(options_.channels, nullptr);
    measuring_ = false;

    const Clock::time_point start = Clock::now();
    phase_start_ = start;
    if (options_.warmup_s <= 0) BeginMeasure(start, /*load_running=*/false);
    const bool finished =
        open_loop ? DriveOpenLoop(start, level) : DriveClosedLoop(start, level);
    step_->EnterDrain(/*timed_out=*/!finished);
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
    CollectBefore(/*block=*/true);
    if (before_.has_value()) {
      std::string notice;
      std::optional<inference::ModelStatistics> after =
          stats_.Fetch(result.server.note, notice);
      Notice(notice);
      if (after.has_value()) {
        absl::StatusOr<ServerStatsDelta> delta = StatsDelta(*before_, *after);
        if (delta.ok()) {
          result.server.available = true;
          result.server.delta = *delta;
        } else {
          result.server.note = std::string(delta.status().message());
        }
      }
    } else {
      result.server.note = before_note_;
    }
    step_.reset();
    stream_conns_.clear();
    before_.reset();
    return result;
  }

 private:
  bool Measuring() const { return measuring_; }

  // With load already running, the first statistics snapshot is taken on
  // another thread, so that open-loop arrivals stay on schedule.
  void BeginMeasure(Clock::time_point t0, bool load_running) {
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

  // Takes the first snapshot once fetched (or, with `block`, waits for it).
  void CollectBefore(bool block) {
    if (!before_future_.valid()) return;
    if (!block && before_future_.wait_for(std::chrono::seconds(0)) !=
                      std::future_status::ready) {
      return;
    }
    before_ = before_future_.get();
    Notice(before_notice_);
  }

  void Notice(const std::string& message) {
    if (message.empty() || !progress_) return;
    LoadProgress event;
    event.kind = LoadProgress::Kind::kNotice;
    event.step = index_;
    event.steps = steps_;
    event.message = message;
    progress_(event);
  }

  void Tick() {
    if (!progress_) return;
    const Step::Snapshot snapshot = step_->Peek();
    LoadProgress event;
    event.kind = LoadProgress::Kind::kTick;
    event.step = index_;
    event.steps = steps_;
    event.open_loop = open_loop_;
    event.level = level_;
    event.warming_up = snapshot.phase == Phase::kWarmup;
    event.elapsed_s = Seconds(Clock::now() - phase_start_);
    event.answered = snapshot.answered;
    event.errors = snapshot.errors;
    event.in_flight = snapshot.in_flight;
    if (!event.warming_up && event.elapsed_s > 0) {
      event.requests_per_second = snapshot.successes / event.elapsed_s;
    }
    progress_(event);
  }

  // Sleeps until `until` (or, with `until_idle`, until no call is left),
  // ticking progress and checking stream timeouts on the way. False when
  // the global deadline came first.
  bool WaitUntil(Clock::time_point until, bool until_idle,
                 bool global_deadline = true) {
    for (;;) {
      // Housekeeping first: an open loop behind schedule never sleeps.
      const Clock::time_point now = Clock::now();
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
      if (global_deadline && now >= deadline_) return false;
      if (now >= until) return true;
      if (until_idle && step_->Idle()) return true;
      Clock::time_point wake = std::min(until, next_tick_);
      if (global_deadline) wake = std::min(wake, deadline_);
      if (options_.stream) wake = std::min(wake, next_stale_check_);
      if (until_idle) {
        step_->WaitUntil(wake);
      } else {
        std::this_thread::sleep_until(wake);
      }
    }
  }

  Clock::duration StaleCheckInterval() const {
    return std::clamp<Clock::duration>(
        transport_->timeout / 4, std::chrono::milliseconds(1), kStaleCheck);
  }

  void StartRequest(const Ticket& ticket) {
    if (!options_.stream) {
      UnaryCall::Start(step_.get(), ticket);
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

  // False when the global deadline cut the step short.
  bool DriveClosedLoop(Clock::time_point start, double concurrency) {
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
      if (!WaitUntil(start + FromSeconds(options_.warmup_s), false)) {
        return false;
      }
      BeginMeasure(Clock::now(), /*load_running=*/true);
    }
    if (options_.requests > 0) {
      return WaitUntil(Clock::time_point::max(), /*until_idle=*/true);
    }
    return WaitUntil(phase_start_ + FromSeconds(options_.duration_s), false);
  }

  bool DriveOpenLoop(Clock::time_point start, double rate) {
    next_tick_ = start + FromSeconds(options_.progress_interval_s);
    next_stale_check_ = start + StaleCheckInterval();
    ArrivalSchedule schedule(options_.arrivals, rate,
                             options_.seed * 1000003u + index_);
    const Clock::time_point warmup_end = start + FromSeconds(options_.warmup_s);
    for (int64_t arrival = 0;; ++arrival) {
      const Clock::time_point due = start + FromSeconds(schedule.Next());
      if (!Measuring() && due >= warmup_end) {
        if (!WaitUntil(warmup_end, false)) return false;
        BeginMeasure(warmup_end, /*load_running=*/true);
      }
      if (Measuring()) {
        const Clock::time_point end =
            phase_start_ + FromSeconds(options_.duration_s);
        // Behind schedule past the end, later arrivals could not be
        // answered inside the window any more.
        if (options_.requests > 0 ? step_->AllCountedArrived()
                                  : due >= end || Clock::now() >= end) {
          return true;
        }
      }
      if (!WaitUntil(due, false)) return false;
      const bool late = Clock::now() - due > kLateAfter;
      const int channel = static_cast<int>(arrival % options_.channels);
      std::optional<Ticket> ticket = step_->ClaimScheduled(
          channel, !options_.stream, options_.max_in_flight, late);
      if (ticket.has_value()) StartRequest(*ticket);
    }
  }

  absl::Status Drain() {
    // Unary calls end by their deadlines; streams are checked as they go.
    WaitUntil(Clock::now() + transport_->timeout + kDrainGrace,
              /*until_idle=*/true, /*global_deadline=*/false);
    if (step_->Idle()) return absl::OkStatus();
    for (const auto& stream : step_->Streams()) stream->Cancel();
    step_->WaitUntil(Clock::now() + kCancelGrace);
    if (step_->Idle()) return absl::OkStatus();
    return absl::InternalError(
        "calls still unfinished after cancelling them; giving up");
  }

  const LoadOptions& options_;
  std::shared_ptr<Transport> transport_;
  const Clock::time_point deadline_;
  const LoadGenerator::ProgressCallback& progress_;
  const int steps_;
  StatsProbe stats_;

  // The step being run.
  int index_ = 0;
  bool open_loop_ = false;
  double level_ = 0;
  std::unique_ptr<Step> step_;
  std::vector<std::shared_ptr<StreamConn>> stream_conns_;
  bool measuring_ = false;
  Clock::time_point phase_start_;
  Clock::time_point next_tick_, next_stale_check_;
  std::future<std::optional<inference::ModelStatistics>> before_future_;
  std::optional<inference::ModelStatistics> before_;
  std::string before_note_, before_notice_;
};

absl::Status Range(const char* name, double value, double min, double max) {
  if (value >= min && value <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      name, " is ", value, "; it must be in [", min, ", ", max, "]"));
}

}  // namespace

absl::Status ValidateLoadOptions(const LoadOptions& options) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError("no target");
  }
  if (options.rates.empty() && options.concurrency.empty()) {
    return absl::InvalidArgumentError("no concurrency and no rate to run");
  }
  std::vector<absl::Status> checks = {
      Range("duration", options.duration_s, 1e-3, 7 * 86400.0),
      Range("requests", static_cast<double>(options.requests), 0, 1e9),
      Range("warmup", options.warmup_s, 0, 86400.0),
      Range("batch", static_cast<double>(options.batch), 1, 1 << 24),
      Range("channels", options.channels, 1, 1024),
      Range("max in flight", options.max_in_flight, 1, 100000),
      Range("timeout (ms)", static_cast<double>(options.timeout.count()), 1,
            86400e3),
      Range("global timeout", options.global_timeout_s, 0, 30 * 86400.0),
      Range("progress interval", options.progress_interval_s, 0.01, 3600),
  };
  for (int concurrency : options.concurrency) {
    checks.push_back(Range("concurrency", concurrency, 1, 10000));
  }
  for (double rate : options.rates) {
    checks.push_back(Range("rate", rate, 1e-3, 1e6));
  }
  for (const absl::Status& status : checks) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> CreateLoadChannel(const std::string& target,
                                                 int index) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxSendMessageSize(INT_MAX);
  arguments.SetMaxReceiveMessageSize(INT_MAX);
  arguments.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  // Each channel its own subchannel pool and distinct arguments: its own
  // TCP connection, not one shared by all channels to the target.
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  arguments.SetInt("reluserve.load_channel", index);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   arguments);
}

LoadGenerator::LoadGenerator(LoadOptions options)
    : options_(std::move(options)) {}

absl::StatusOr<std::vector<StepResult>> LoadGenerator::Run(
    const ProgressCallback& progress) {
  absl::Status valid = ValidateLoadOptions(options_);
  if (!valid.ok()) return valid;
  const bool open_loop = !options_.rates.empty();
  std::vector<double> levels;
  if (open_loop) {
    levels = options_.rates;
  } else {
    levels.assign(options_.concurrency.begin(), options_.concurrency.end());
  }
  const int steps = static_cast<int>(levels.size());
  const double timeout_s = options_.timeout.count() / 1e3;
  double global_s = options_.global_timeout_s;
  if (global_s <= 0) {
    global_s = options_.requests > 0
                   ? 3600.0
                   : steps * (options_.warmup_s + options_.duration_s +
                              2 * timeout_s + 10.0);
  }
  const Clock::time_point deadline = Clock::now() + FromSeconds(global_s);

  auto transport = std::make_shared<Transport>();
  transport->timeout = options_.timeout;
  for (int i = 0; i < options_.channels; ++i) {
    transport->channels.push_back(CreateLoadChannel(options_.target, i));
    transport->stubs.push_back(
        std::make_unique<grpc::GenericStub>(transport->channels.back()));
  }
  const std::chrono::milliseconds control =
      std::max<std::chrono::milliseconds>(options_.timeout, kControlDeadline);
  for (const auto& channel : transport->channels) {
    if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                   control)) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ",
                                                 options_.target, " within ",
                                                 control.count(), " ms"));
    }
  }

  ClientOptions client_options;
  client_options.target = options_.target;
  client_options.deadline = control;
  client_options.model_name = options_.model_name;
  client_options.model_version = options_.model_version;
  const Client client(client_options, transport->channels[0]);
  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      client.ModelMetadata();
  if (!metadata.ok()) {
    return absl::Status(
        metadata.status().code(),
        absl::StrCat("ModelMetadata: ", metadata.status().message()));
  }
  LoadRequestSpec spec;
  spec.model_name = options_.model_name;
  spec.model_version = options_.model_version;
  spec.batch = options_.batch;
  spec.grad = options_.grad;
  spec.dtype = options_.dtype;
  spec.seed = options_.seed;
  absl::StatusOr<int64_t> in_features = InFeatures(*metadata);
  if (!in_features.ok()) return in_features.status();
  spec.in_features = *in_features;
  if (options_.grad) {
    absl::StatusOr<int64_t> out_features = OutFeatures(*metadata);
    if (!out_features.ok()) return out_features.status();
    spec.out_features = *out_features;
  }
  absl::StatusOr<inference::ModelInferRequest> request = MakeLoadRequest(spec);
  if (!request.ok()) return request.status();
  transport->body = grpc::Slice(request->SerializeAsString());
  transport->expected_outputs = ExpectedOutputs(spec);

  Driver driver(options_, transport, deadline, progress, steps);
  std::vector<StepResult> results;
  for (int index = 0; index < steps; ++index) {
    absl::StatusOr<StepResult> result =
        driver.RunStep(index, open_loop, levels[index]);
    if (!result.ok()) return result.status();
    results.push_back(*std::move(result));
    if (progress) {
      LoadProgress event;
      event.kind = LoadProgress::Kind::kStepDone;
      event.step = index;
      event.steps = steps;
      event.open_loop = open_loop;
      event.level = levels[index];
      event.result = &results.back();
      progress(event);
    }
    if (results.back().timed_out) break;
  }
  return results;
}

}  // namespace reluserve
