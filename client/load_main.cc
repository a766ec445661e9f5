// reluserve-load: a load generator for ReluServe or any Open Inference
// Protocol (KServe v2 / Triton) server, over gRPC or HTTP. Flags ->
// LoadGenerator -> table, CSV, JSON, plot.

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "client/channel_flags.h"
#include "client/load_generator.h"
#include "client/load_report.h"
#include "client/protocol_flags.h"
#include "client/security_flags.h"
#include "common/command_line.h"

namespace reluserve {
namespace {

constexpr char kBinary[] = "reluserve-load";

void PrintError(const absl::Status& status) {
  std::cerr << kBinary << ": " << absl::StatusCodeToString(status.code())
            << ": " << status.message() << "\n";
}

// A run that measured nothing: an unreachable server is kExitUnreachable,
// anything else kExitFailed.
int FailRun(const absl::Status& status) {
  PrintError(status);
  return status.code() == absl::StatusCode::kUnavailable ? kExitUnreachable
                                                         : kExitFailed;
}

// An output not written.
int FailOutput(const absl::Status& status) {
  PrintError(status);
  return kExitFailed;
}

// The --help footer, hard-wrapped: CLI11 prints it as it is. It states the
// defaults below.
static_assert(kLoadLateAfter == std::chrono::milliseconds(1));
static_assert(kLoadServerGoneAfterS == 1.5);
static_assert(kRetryInitialBackoffS == 0.05 && kRetryBackoffMultiplier == 2 &&
              kRetryMaxBackoffS >= 0.4 && kMaxCallAttempts == 5);
static_assert(BackoffPolicy{}.initial == std::chrono::milliseconds(50) &&
              BackoffPolicy{}.multiplier == 1.6 &&
              BackoffPolicy{}.max == std::chrono::milliseconds(1000) &&
              BackoffPolicy{}.jitter == 0.2);
std::string Footer() {
  return "Columns: req/s and rows/s are successful requests (and rows) per "
         "second of the\n"
         "measured window; latency is the client's round trip of successful "
         "requests;\n"
         "errors are failed answers, by gRPC code below the table. Open loop "
         "only:\n"
         "  dropped  arrivals not sent: --max-in-flight requests were "
         "unanswered, or the\n"
         "           client was backing off after UNAVAILABLE\n"
         "  late     requests sent more than 1 ms after their scheduled time: "
         "the client\n"
         "           fell behind its own schedule, so less than the asked rate "
         "may have\n"
         "           been offered\n"
         "The CSV and JSON reports carry the same counts under the same "
         "names.\n"
         "\n"
         "UNAVAILABLE, two layers: gRPC's retry policy first sends the call "
         "again, up to\n"
         "--max-attempts in all, 50, 100, 200, 400 ms apart (+-20%), to the "
         "next address\n"
         "with --lb-policy round_robin; the latency counts them, the errors "
         "do not. When\n"
         "every attempt got UNAVAILABLE, the request counts as an error and "
         "the next one\n"
         "waits: 50 ms, x1.6 for each such error in a row, at most 1 s, +-20% "
         "jitter\n"
         "(closed loop: per in-flight slot; open loop: arrivals are held "
         "back). When only\n"
         "UNAVAILABLE answers come for 1.5 s, the server went away: the step "
         "stops\n"
         "(\"server went away at t=... s\", since the first step began) and "
         "later steps\n"
         "are skipped. Stream messages answered with an error_message are "
         "never retried\n"
         "by gRPC (the stream has answered).\n"
         "\n"
         "Exit status:\n"
         "  0  every step measured and every request succeeded\n"
         "  1  failed: nothing measured (e.g. no such model), or an output not "
         "written\n"
         "  2  usage error (a bad flag or value); nothing done\n"
         "  3  measured, but some requests failed or the global timeout cut a "
         "step\n"
         "  4  the server could not be reached within --connect-timeout-ms, or "
         "it went\n"
         "     away during the run (the steps measured until then are "
         "reported)\n";
}

// Progress on stderr: a live line on a terminal, plain lines otherwise.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool live) : live_(live) {}

  void operator()(const LoadProgress& progress) {
    switch (progress.kind) {
      case LoadProgress::Kind::kTick:
        if (live_) {
          std::fprintf(stderr, "\r%s\033[K",
                       FormatProgressLine(progress).c_str());
          std::fflush(stderr);
        }
        break;
      case LoadProgress::Kind::kStepDone:
        std::fprintf(stderr, "%s%s\n", live_ ? "\r\033[K" : "",
                     FormatStepLine(*progress.result, progress.steps).c_str());
        break;
      case LoadProgress::Kind::kNotice:
        std::fprintf(stderr, "%snote: %s\n", live_ ? "\r\033[K" : "",
                     progress.message.c_str());
        break;
    }
  }

 private:
  const bool live_;
};

int Main(int argc, char** argv) {
  // Keep megabyte message buffers in the heap between calls, as the server
  // does, so the client does not fault them in again on every call.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);

  LoadOptions options;
  int64_t timeout_ms = options.timeout.count();
  int64_t connect_timeout_ms = options.connect_timeout.count();
  std::string csv_path, json_path, plot_path;
  bool quiet = false;

  CLI::App app(
      "Load generator for ReluServe and other Open Inference Protocol "
      "(KServe v2 / Triton) servers, over gRPC or HTTP, in the manner of "
      "perf_analyzer. "
      "Closed loop: --concurrency 1,4,16 keeps that many requests in flight, "
      "each answer replaced at once. Open loop: --rate R sends R requests/s "
      "on schedule (Poisson or constant arrivals) whether or not earlier ones "
      "were answered. Each step warms up, then measures for --duration or "
      "--requests. The request (random N(0,1) tensors for the model's "
      "inputs, its optional ones such as grad_y only with --grad) is built "
      "once from --seed and reused; the inputs, their shapes and the "
      "outputs come from the model's metadata and ModelConfig, so any model "
      "the server serves can be driven.",
      kBinary);
  app.footer(Footer());
  AddVersionFlag(app, kBinary);

  ProtocolFlags protocol;
  AddProtocolFlags(app, protocol);
  app.add_option("--model", options.model_name, "Model name")
      ->capture_default_str();
  app.add_option("--model-version", options.model_version,
                 "Model version (default: the server's choice)");
  CLI::Option* concurrency =
      app.add_option("--concurrency", options.concurrency,
                     "Closed loop: requests in flight, one step per value")
          ->delimiter(',')
          ->type_name("N,...")
          ->check(CLI::Range(1, 10000))
          ->capture_default_str();
  app.add_option("--rate", options.rates,
                 "Open loop: requests per second, one step per value")
      ->delimiter(',')
      ->type_name("R,...")
      ->check(CLI::Range(1e-3, 1e6))
      ->excludes(concurrency);
  const std::map<std::string, Arrivals> arrivals = {
      {"poisson", Arrivals::kPoisson}, {"constant", Arrivals::kConstant}};
  app.add_option("--arrivals", options.arrivals,
                 "Open loop: exponential gaps (poisson) or equal ones")
      ->transform(CLI::CheckedTransformer(arrivals, CLI::ignore_case))
      ->default_str("poisson");
  app.add_option("--max-in-flight", options.max_in_flight,
                 "Open loop: arrivals finding this many requests unanswered "
                 "are dropped (counted, not sent)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  CLI::Option* duration = app.add_option("--duration", options.duration_s,
                                         "Seconds each step measures")
                              ->type_name("SECONDS")
                              ->check(CLI::Range(1e-3, 7 * 86400.0))
                              ->capture_default_str();
  app.add_option("--requests", options.requests,
                 "Measure this many requests per step instead of a duration")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000000}))
      ->excludes(duration);
  app.add_option("--warmup", options.warmup_s,
                 "Seconds of load before each step's measurement, discarded")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  app.add_option("--batch", options.batch, "Rows N of each request")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24))
      ->capture_default_str();
  app.add_flag("--grad", options.grad,
               "Send the model's optional inputs too (grad_y) and ask for "
               "every output it lists (y, grad_x and each parameter's "
               "gradient); without it only the first output (y)");
  const std::map<std::string, WireType> dtypes = {{"fp32", WireType::kFp32},
                                                  {"bf16", WireType::kBf16}};
  app.add_option("--dtype", options.dtype,
                 "Datatype of x and grad_y on the wire (bf16: rounded to "
                 "nearest even)")
      ->transform(CLI::CheckedTransformer(dtypes, CLI::ignore_case))
      ->default_str("fp32");
  app.add_option("--channels", options.channels,
                 "Separate gRPC connections to spread the requests over (HTTP: "
                 "a connection per request in flight)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_flag("--stream", options.stream,
               "Use ModelStreamInfer streams (closed loop: one per in-flight "
               "slot; open loop: one per channel) instead of ModelInfer "
               "(gRPC only)");
  app.add_option("--timeout-ms", timeout_ms, "Deadline of each request")
      ->type_name("MS")
      ->check(CLI::Range(int64_t{1}, int64_t{86400000}))
      ->capture_default_str();
  app.add_option("--connect-timeout-ms", connect_timeout_ms,
                 "How long to wait for the first connection to the server; "
                 "then give up with exit status 4")
      ->type_name("MS")
      ->check(CLI::Range(int64_t{1}, int64_t{86400000}))
      ->capture_default_str();
  AddChannelFlags(app, options.channel);
  SecurityFiles security;
  AddSecurityFlags(app, security);
  app.add_option("--seed", options.seed, "Seed of the random tensors")
      ->capture_default_str();
  app.add_option("--global-timeout", options.global_timeout_s,
                 "Stop the whole run after this many seconds (0: the steps' "
                 "length plus margins; one hour with --requests)")
      ->type_name("SECONDS")
      ->check(CLI::Range(0.0, 30 * 86400.0))
      ->capture_default_str();
  app.add_option("--csv", csv_path, "Write one CSV row per step here")
      ->type_name("FILE");
  app.add_option("--json", json_path, "Write every step as JSON here")
      ->type_name("FILE");
  app.add_option("--plot", plot_path,
                 "Draw p50 and p99 latency against throughput into this PNG "
                 "(needs gnuplot: Debian package gnuplot-nox)")
      ->type_name("FILE.png");
  app.add_flag("--quiet", quiet, "No progress output");
  if (std::optional<int> exit = ParseCommandLine(app, argc, argv)) {
    return *exit;
  }
  options.protocol = protocol.protocol;
  options.http_tensors = protocol.http_tensors();
  options.target = protocol.Target();
  options.timeout = std::chrono::milliseconds(timeout_ms);
  options.connect_timeout = std::chrono::milliseconds(connect_timeout_ms);
  if (std::optional<int> exit =
          LoadSecurityFlags(security, kBinary, options.channel.security)) {
    return *exit;
  }
  if (absl::Status valid = ValidateLoadOptions(options); !valid.ok()) {
    std::cerr << kBinary << ": " << valid.message() << "\nRun '" << kBinary
              << " --help' for usage.\n";
    return kExitUsage;
  }

  ProgressPrinter printer(isatty(STDERR_FILENO) == 1);
  LoadGenerator generator(options);
  absl::StatusOr<std::vector<StepResult>> steps =
      quiet ? generator.Run()
            : generator.Run([&printer](const LoadProgress& progress) {
                printer(progress);
              });
  if (!steps.ok()) return FailRun(steps.status());

  std::cout << FormatTable(options, *steps) << std::flush;
  int code = kExitOk;
  for (const StepResult& step : *steps) {
    if (step.errors > 0 || step.timed_out) code = kExitDegraded;
  }
  for (const StepResult& step : *steps) {
    if (step.server_gone) code = kExitUnreachable;
  }
  if (!csv_path.empty()) {
    absl::Status status = WriteTextFile(csv_path, FormatCsv(options, *steps));
    if (!status.ok()) code = FailOutput(status);
  }
  if (!json_path.empty()) {
    absl::Status status = WriteTextFile(json_path, FormatJson(options, *steps));
    if (!status.ok()) code = FailOutput(status);
  }
  if (!plot_path.empty()) {
    absl::Status status = PlotLatencyVsThroughput(options, *steps, plot_path);
    if (!status.ok()) code = FailOutput(status);
  }
  return code;
}

}  // namespace
}  // namespace reluserve

int main(int argc, char** argv) { return reluserve::Main(argc, argv); }
