// The engine of reluserve-load: drives a ReluServe (or any Open Inference
// Protocol) server with ModelInfer or ModelStreamInfer calls over gRPC's
// callback API, or with HTTP inference requests from blocking keep-alive
// connections, and measures each step of a concurrency or rate sweep.

#ifndef RELUSERVE_CLIENT_LOAD_GENERATOR_H_
#define RELUSERVE_CLIENT_LOAD_GENERATOR_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/channel.h"
#include "client/inference_client.h"
#include "client/load_backoff.h"
#include "client/load_stats.h"
#include "client/load_wire.h"

namespace reluserve {

// Open loop: a request sent more than this after its scheduled time counts
// as late (the client fell behind its own schedule).
inline constexpr std::chrono::milliseconds kLoadLateAfter{1};

// Only UNAVAILABLE answers for this long (by default): the server went away.
inline constexpr double kLoadServerGoneAfterS = 1.5;

struct LoadOptions {
  // gRPC (ModelInfer, ModelStreamInfer) or HTTP (POST .../infer, one
  // keep-alive connection and thread per request in flight; no streams, one
  // "channel").
  Protocol protocol = Protocol::kGrpc;
  // HTTP: binary tensors (Triton's extension) or JSON numbers.
  HttpTensors http_tensors = HttpTensors::kBinary;
  // gRPC: host:port or any gRPC target URI (an ipv4: list of several
  // addresses is balanced round robin). HTTP: one host:port
  // (ParseHttpTarget). Never reached through a proxy.
  std::string target = "127.0.0.1:8001";
  // gRPC's retry policy and load balancing of every channel (its
  // http_proxy and connection_index are set by Run()). A call is retried
  // inside gRPC while it gets UNAVAILABLE, up to channel.max_attempts; only
  // its last answer reaches the step, which then backs off (`backoff`).
  // HTTP: max_attempts alone, on 503 and refused connections.
  ChannelOptions channel;
  std::string model_name = "linear_relu";
  std::string model_version;  // empty: the server's choice

  // Closed loop, one step per value: that many requests in flight, each
  // answered one replaced at once. Used when `rates` is empty.
  std::vector<int> concurrency = {1};
  // Open loop, one step per value (requests/s): requests leave on schedule
  // whether or not earlier ones were answered.
  std::vector<double> rates;
  Arrivals arrivals = Arrivals::kPoisson;
  // Open loop: an arrival that finds this many requests unanswered is not
  // sent but counted as dropped.
  int max_in_flight = 512;

  // A step measures for `duration_s`, or, when `requests` > 0, until that
  // many requests sent after the warm-up are answered. Warm-up results are
  // discarded.
  double duration_s = 5.0;
  int64_t requests = 0;
  double warmup_s = 1.0;

  int64_t batch = 1;
  bool grad = false;  // send grad_y and ask for all four outputs
  WireType dtype = WireType::kFp32;
  uint64_t seed = 0;
  // Separate connections; requests are spread over them round robin.
  int channels = 1;
  // ModelStreamInfer: closed loop, one stream per in-flight slot; open loop,
  // one stream per channel. Otherwise unary ModelInfer.
  bool stream = false;
  // Each request's deadline (for streams: enforced by cancelling the stream).
  std::chrono::milliseconds timeout{10000};
  // How long Run() waits for every channel to connect before it gives up
  // (Unavailable, nothing measured).
  std::chrono::milliseconds connect_timeout{1000};
  // After an UNAVAILABLE answer (gRPC's retries, if any, spent): closed
  // loop, the in-flight slot waits this backoff before its next request;
  // open loop, arrivals are held back (counted as dropped) for it.
  BackoffPolicy backoff;
  // Only UNAVAILABLE answers for this long: the server went away; the step
  // stops and no further step runs.
  double server_gone_after_s = kLoadServerGoneAfterS;
  // Hard bound on the whole run, after which it stops early; 0 picks one
  // from the steps (or one hour with `requests`).
  double global_timeout_s = 0;
  // How often the progress callback gets a tick.
  double progress_interval_s = 0.5;
};

// Why a step's latency differs from the server's view: the server's own
// split of time per request, from ModelStatistics before and after.
struct ServerSplit {
  bool available = false;
  std::string note;  // why not available
  ServerStatsDelta delta;
};

struct StepResult {
  int index = 0;  // 0-based
  bool open_loop = false;
  int concurrency = 0;  // closed loop
  double rate = 0;      // open loop, requests/s asked for
  double seconds = 0;   // the measured window
  // Measured answers: with `requests`, those to requests sent after the
  // warm-up; otherwise those that arrived inside the window.
  int64_t requests = 0;
  int64_t successes = 0;
  int64_t errors = 0;
  std::map<std::string, int64_t> errors_by_code;   // gRPC code name -> count
  std::map<std::string, std::string> first_error;  // code name -> a message
  // Open loop: arrivals not sent, because max_in_flight requests were
  // unanswered or (held_back) the UNAVAILABLE backoff held them.
  int64_t dropped = 0;
  int64_t held_back = 0;  // of `dropped`
  // Open loop: requests sent more than kLoadLateAfter after their scheduled
  // time (the client, not the server, fell behind).
  int64_t late = 0;
  double requests_per_second = 0;  // successes / seconds
  double rows_per_second = 0;      // requests_per_second * batch
  LatencyStats latency_ms;         // of the successful requests
  ServerSplit server;
  // The global timeout cut this step short (it is the last one).
  bool timed_out = false;
  // The server went away (only UNAVAILABLE answers for
  // server_gone_after_s): the step stopped early and is the last one.
  bool server_gone = false;
  // When its first UNAVAILABLE answer of that streak came, in seconds since
  // the first step began; and that answer's message.
  double server_gone_at_s = 0;
  std::string server_gone_error;
};

struct LoadProgress {
  enum class Kind {
    kTick,      // every progress_interval_s while a step runs
    kStepDone,  // `result` is set
    kNotice,    // something to tell the user once; `message`
  };
  Kind kind = Kind::kTick;
  int step = 0;  // 0-based
  int steps = 0;
  bool open_loop = false;
  double level = 0;  // the step's concurrency or rate
  bool warming_up = false;
  double elapsed_s = 0;  // since the phase (warm-up or measuring) began
  int64_t answered = 0;  // measured answers so far
  int64_t errors = 0;
  int64_t in_flight = 0;
  double requests_per_second = 0;  // measured so far
  const StepResult* result = nullptr;
  std::string message;
};

// Runs the steps of a sweep, one after another, against one server.
//
// Thread safety: Run() is called from one thread at a time; it blocks until
// every call it started has finished. The progress callback runs on that
// thread, never on gRPC's. Inside, gRPC's callback threads (HTTP: the
// threads of the connections) record answers into per-step state under a
// mutex and start the replacement calls.
class LoadGenerator {
 public:
  using ProgressCallback = std::function<void(const LoadProgress&)>;

  explicit LoadGenerator(LoadOptions options);

  const LoadOptions& options() const { return options_; }

  // InvalidArgument for options out of range; Unavailable when the target
  // cannot be reached within connect_timeout, or the server's error when it
  // has no such model (nothing measured then). Otherwise the steps run, each
  // with its result; a step cut short by the global timeout, or stopped
  // because the server went away, is the last and says so.
  absl::StatusOr<std::vector<StepResult>> Run(
      const ProgressCallback& progress = nullptr);

 private:
  LoadOptions options_;
};

// The checks Run() starts with.
absl::Status ValidateLoadOptions(const LoadOptions& options);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_LOAD_GENERATOR_H_
