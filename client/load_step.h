// Inside reluserve-load: what one step of a sweep counts. The Step is shared
// by the driver (LoadGenerator::Run()'s thread) and gRPC's callback threads;
// calls record their answers into it and claim their replacements from it.
// Not part of the library's interface (namespace load_internal).

#ifndef RELUSERVE_CLIENT_LOAD_STEP_H_
#define RELUSERVE_CLIENT_LOAD_STEP_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "client/inference_client.h"
#include "client/load_backoff.h"
#include "client/load_clock.h"
#include "client/load_generator.h"
#include "client/load_wire.h"
#include "grpcpp/channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/status.h"

namespace reluserve::load_internal {

double Seconds(Clock::duration duration);
Clock::duration FromSeconds(double seconds);
// `when` on the system clock, as far from its present as it is from
// `clock`'s.
std::chrono::system_clock::time_point ToSystem(
    Clock::time_point when, const LoadClock& clock = LoadClock::Real());
std::string CodeName(grpc::StatusCode code);

class HttpCalls;

// What every call of a run shares; immutable once built but for the ids.
struct Transport {
  // gRPC: the channels and the serialized request, without id.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  grpc::Slice body;
  // HTTP (instead): the threads that send the requests.
  std::shared_ptr<HttpCalls> http;
  // Where ModelStatistics goes, either way.
  std::shared_ptr<const InferenceClient> statistics;
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
  // Closed loop: UNAVAILABLE answers in a row on this in-flight slot before
  // this request (0: the last answer was something else).
  int attempt = 0;
};

struct Outcome {
  bool ok = true;
  std::string code;  // gRPC code name when not ok
  std::string message;
};

Outcome FromStatus(const grpc::Status& status);
Outcome FromStatus(const absl::Status& status);
// Whether `response` answers request `id` with `expected` outputs.
Outcome Check(const ScannedResponse& response, uint64_t id, int expected);

enum class Phase { kWarmup, kMeasure, kDrain };

// Why a step stopped sending.
enum class StopReason { kFinished, kTimedOut, kServerGone };

class StreamConn;

// How a step reacts to UNAVAILABLE answers.
struct StepPolicy {
  BackoffPolicy backoff;
  Clock::duration gone_after = std::chrono::milliseconds(1500);
  uint64_t jitter_seed = 0;
};

// One step's state. The driver owns it and keeps it until every call and
// stream has finished; they point to it without owning it, so that the last
// reference to the channels is never dropped on a gRPC callback thread
// (destroying a channel from its own callback thread breaks gRPC).
//
// Closed loop, an UNAVAILABLE answer does not get its replacement at once:
// the slot waits out a backoff (BackoffDelay) as a retry that the driver
// sends when due. Open loop, it closes a gate for the backoff; arrivals
// meanwhile are held back (counted as dropped). Either way, UNAVAILABLE
// answers alone for StepPolicy::gone_after mean the server went away.
//
// Every time the step reads (answers, arrivals, the end of the window, a
// drain) and every wait comes from its LoadClock; times passed in must be
// on that clock.
//
// Thread safety: every public method may be called from any thread; all
// state is guarded by mu_. No gRPC call is ever started with mu_ held (a
// reaction may run inline and take it).
class Step {
 public:
  // `deadline`: the run's global deadline, where measuring stops at the
  // latest. `clock` must outlive the step.
  Step(std::shared_ptr<Transport> transport, bool closed_loop, int64_t requests,
       double duration_s, Clock::time_point deadline, StepPolicy policy,
       const LoadClock& clock = LoadClock::Real());

  Transport& transport() const { return *transport_; }
  const LoadClock& clock() const { return clock_; }
  bool closed_loop() const { return closed_loop_; }
  std::chrono::system_clock::time_point stream_deadline() const {
    return stream_deadline_;
  }

  void EnterMeasure(Clock::time_point t0);

  // No more requests; pending retries are dropped. A reason other than
  // kFinished cuts the measured window short at the present.
  void EnterDrain(StopReason reason);

  // Closed loop: the ticket of the next request on `channel`, or nothing when
  // the step sends no more. `new_reactor` counts a call about to start.
  std::optional<Ticket> Claim(int channel, bool new_reactor);

  // Open loop: the ticket of a request due now, or nothing when
  // `max_in_flight` requests are unanswered or the UNAVAILABLE backoff holds
  // arrivals back (then a dropped one).
  std::optional<Ticket> ClaimScheduled(int channel, bool new_reactor,
                                       int max_in_flight, bool late);

  // Open loop with `requests`: every counted arrival sent or dropped.
  bool AllCountedArrived();

  // Records the answer to `ticket`; with `replace` (closed loop), also
  // claims the next request on the same channel, unless the answer was
  // UNAVAILABLE: then the next request waits as a retry (ClaimDueRetries).
  std::optional<Ticket> Record(const Ticket& ticket, Clock::time_point sent,
                               const Outcome& outcome, bool replace,
                               bool new_reactor);

  // A claimed request that was never sent.
  void Abandon(const Ticket& ticket);

  // A stream answer with no request left to match it.
  void RecordStray();

  // Closed loop: tickets for the retries due by `now` (those the step still
  // sends), removed from the queue.
  std::vector<Ticket> ClaimDueRetries(Clock::time_point now, bool new_reactor);

  // When the driver must look again at the latest: the next retry, or the
  // moment an UNAVAILABLE streak would mean the server went away.
  Clock::time_point NextWake();

  // Whether the server went away (by `now`); once true, stays true.
  bool CheckGone(Clock::time_point now);

  void AddReactor();
  void ReactorDone();

  void Register(const std::shared_ptr<StreamConn>& stream);
  std::shared_ptr<StreamConn> Unregister(StreamConn* stream);
  std::vector<std::shared_ptr<StreamConn>> Streams();

  // Sleeps until `when`, until the server is found gone, until a retry is
  // queued that is due before `when`, or (with `until_idle`) until no call,
  // stream or retry is left.
  void WaitUntil(Clock::time_point when, bool until_idle = true);
  // No call, stream or retry left.
  bool Idle();

  struct Snapshot {
    Phase phase;
    int64_t answered, errors, successes, in_flight;
  };
  Snapshot Peek();

  struct Gone {
    Clock::time_point since;  // the first UNAVAILABLE answer of the streak
    std::string message;      // its message
  };
  // Set once CheckGone() or an answer found the server gone.
  std::optional<Gone> gone();

  // The measured numbers; call when Idle(). The server_gone_at_s field is
  // left to the driver, which knows when the run began.
  void Fill(StepResult& result, int64_t batch);

 private:
  struct Retry {
    int channel;
    int attempt;
  };

  Ticket NewTicketLocked(int channel, bool new_reactor);
  std::optional<Ticket> ClaimLocked(int channel, bool new_reactor);
  bool IdleLocked() const { return reactors_ == 0 && retries_.empty(); }
  Clock::duration JitteredBackoffLocked(int attempt);
  // Notes the server gone when the streak says so (not while draining).
  void UpdateGoneLocked(Clock::time_point now);

  const std::shared_ptr<Transport> transport_;
  const bool closed_loop_;
  const int64_t requests_;
  const Clock::duration duration_;
  const Clock::time_point deadline_;
  const std::chrono::system_clock::time_point stream_deadline_;
  const StepPolicy policy_;
  const LoadClock& clock_;

  std::mutex mu_;
  // reactors_ reached 0, a retry was queued, or the server is gone.
  std::condition_variable cv_;
  Phase phase_ = Phase::kWarmup;
  Clock::time_point t0_, t_end_;
  Clock::time_point abort_time_;
  Clock::time_point last_answer_;
  bool timed_out_ = false;
  bool measured_ = false;     // the measurement phase has begun
  int64_t counted_sent_ = 0;  // requests mode: counted requests claimed
  int64_t in_flight_ = 0;     // requests sent and not answered
  int64_t reactors_ = 0;      // calls and streams not yet done
  int64_t dropped_ = 0, late_ = 0, held_back_ = 0;
  std::vector<double> latencies_ms_;
  std::map<std::string, int64_t> errors_by_code_;
  std::map<std::string, std::string> first_error_;
  std::unordered_map<StreamConn*, std::shared_ptr<StreamConn>> streams_;

  // UNAVAILABLE handling.
  std::mt19937_64 jitter_;
  std::multimap<Clock::time_point, Retry> retries_;  // closed loop
  Clock::time_point gate_until_;                     // open loop
  int gate_attempt_ = 0;                             // open loop
  UnavailableStreak streak_;
  std::optional<Gone> gone_;
};

}  // namespace reluserve::load_internal

#endif  // RELUSERVE_CLIENT_LOAD_STEP_H_
