// Inside reluserve-load: the load managers. A Driver runs one step after
// another on LoadGenerator::Run()'s thread: closed loop (a fixed number of
// requests in flight, each answer replaced) or open loop (requests on a
// schedule), with warm-up, measurement, drain and the ModelStatistics
// snapshots around each step. Not part of the library's interface.

#ifndef RELUSERVE_CLIENT_LOAD_DRIVER_H_
#define RELUSERVE_CLIENT_LOAD_DRIVER_H_

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/inference_client.h"
#include "client/load_generator.h"
#include "client/load_step.h"
#include "grpc_service.pb.h"

namespace reluserve::load_internal {

// The ModelStatistics snapshots around each step, through `client` (whose
// options name the model and version).
class StatsProbe {
 public:
  StatsProbe(const LoadOptions& options,
             std::shared_ptr<const InferenceClient> client)
      : options_(options), client_(std::move(client)) {}

  // Nothing when statistics are unavailable; `note` says why, and
  // `notice` is set the first time the server says it has none.
  std::optional<inference::ModelStatistics> Fetch(std::string& note,
                                                  std::string& notice);

 private:
  const LoadOptions& options_;
  const std::shared_ptr<const InferenceClient> client_;
  bool unimplemented_ = false;
};

// One Run(): the steps one after another. The run's time (server_gone_at_s)
// counts from the Driver's construction. The schedule, warm-up, measured
// window and every wait run on `clock` (which its steps get too; `deadline`
// is on it); gRPC's own deadlines stay on the system clock.
class Driver {
 public:
  // `clock` must outlive the Driver.
  Driver(const LoadOptions& options, std::shared_ptr<Transport> transport,
         Clock::time_point deadline,
         const LoadGenerator::ProgressCallback& progress, int steps,
         const LoadClock& clock = LoadClock::Real());

  // Runs step `index` at `level` (concurrency or rate). An error only when
  // calls could not be finished (nothing to report then).
  absl::StatusOr<StepResult> RunStep(int index, bool open_loop, double level);

 private:
  bool Measuring() const { return measuring_; }

  // With load already running, the first statistics snapshot is taken on
  // another thread, so that open-loop arrivals stay on schedule.
  void BeginMeasure(Clock::time_point t0, bool load_running);
  // Takes the first snapshot once fetched (or, with `block`, waits for it).
  void CollectBefore(bool block);
  void FillServerSplit(StepResult& result);

  void Notice(const std::string& message);
  void Tick();

  // Sleeps until `until` (or, with `until_idle`, until no call is left),
  // ticking progress, sending due retries and checking stream timeouts on
  // the way. kTimedOut when the global deadline came first, kServerGone
  // when the server went away.
  StopReason WaitUntil(Clock::time_point until, bool until_idle,
                       bool global_deadline = true);
  Clock::duration StaleCheckInterval() const;
  void StartRequest(const Ticket& ticket);

  StopReason DriveClosedLoop(Clock::time_point start, double concurrency);
  StopReason DriveOpenLoop(Clock::time_point start, double rate);
  absl::Status Drain();

  const LoadOptions& options_;
  std::shared_ptr<Transport> transport_;
  const Clock::time_point deadline_;
  const LoadGenerator::ProgressCallback& progress_;
  const int steps_;
  const LoadClock& clock_;
  const Clock::time_point run_start_;
  StatsProbe stats_;

  // The step being run.
  int index_ = 0;
  bool open_loop_ = false;
  double level_ = 0;
  std::unique_ptr<Step> step_;
  std::vector<std::shared_ptr<StreamConn>> stream_conns_;
  bool measuring_ = false;
  Clock::time_point step_start_;
  Clock::time_point phase_start_;
  Clock::time_point next_tick_, next_stale_check_;
  std::future<std::optional<inference::ModelStatistics>> before_future_;
  std::optional<inference::ModelStatistics> before_;
  std::string before_note_, before_notice_;
};

}  // namespace reluserve::load_internal

#endif  // RELUSERVE_CLIENT_LOAD_DRIVER_H_
