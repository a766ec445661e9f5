#include "client/load_report.h"

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace reluserve {
namespace {

using nlohmann::json;

constexpr auto kGnuplotTimeout = std::chrono::seconds(60);

const char* ArrivalsName(Arrivals arrivals) {
  return arrivals == Arrivals::kConstant ? "constant" : "poisson";
}

std::string ErrorsByCode(const StepResult& step) {
  std::vector<std::string> parts;
  for (const auto& [code, count] : step.errors_by_code) {
    parts.push_back(absl::StrCat(code, ":", count));
  }
  return absl::StrJoin(parts, " ");
}

// A number for CSV: integral values without a fraction, others with
// enough digits to round-trip what matters.
std::string Num(double value) { return absl::StrFormat("%.6g", value); }

// A path or title inside a single-quoted gnuplot string.
std::string GnuplotQuote(const std::string& text) {
  std::string clean = absl::StrReplaceAll(text, {{"'", "''"}, {"\n", " "}});
  return absl::StrCat("'", clean, "'");
}

std::string FindOnPath(const std::string& name) {
  const char* path = getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = absl::StrCat(dir, "/", name);
    struct stat info;
    if (stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

// A new empty file named after `suffix` in $TMPDIR (or /tmp).
absl::StatusOr<std::string> TempFile(const char* suffix) {
  const char* dir = getenv("TMPDIR");
  std::string path = absl::StrCat(dir != nullptr && *dir ? dir : "/tmp",
                                  "/reluserve-load-XXXXXX", suffix);
  const int fd = mkstemps(path.data(), static_cast<int>(strlen(suffix)));
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create a temporary file: ", strerror(errno)));
  }
  close(fd);
  return path;
}

absl::Status RunBounded(const std::string& binary,
                        const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const std::string& arg : args) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  pid_t pid;
  const int spawned =
      posix_spawn(&pid, binary.c_str(), nullptr, nullptr, argv.data(), environ);
  if (spawned != 0) {
    return absl::InternalError(
        absl::StrCat("cannot run ", binary, ": ", strerror(spawned)));
  }
  const auto give_up = std::chrono::steady_clock::now() + kGnuplotTimeout;
  int status = 0;
  for (;;) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) {
      return absl::InternalError(
          absl::StrCat("waiting for ", binary, ": ", strerror(errno)));
    }
    if (std::chrono::steady_clock::now() > give_up) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return absl::DeadlineExceededError(absl::StrCat(
          binary, " did not finish within ", kGnuplotTimeout.count(), " s"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(
        binary, " failed (",
        WIFEXITED(status) ? absl::StrCat("exit code ", WEXITSTATUS(status))
                          : std::string("killed by a signal"),
        "); its messages are above"));
  }
  return absl::OkStatus();
}

json ServerJson(const ServerSplit& server) {
  json out;
  out["available"] = server.available;
  if (!server.available) {
    out["note"] = server.note;
    return out;
  }
  const ServerStatsDelta& d = server.delta;
  out["success_count"] = d.success.count;
  out["fail_count"] = d.fail.count;
  out["queue_us"] = d.queue.MeanUs();
  out["compute_input_us"] = d.compute_input.MeanUs();
  out["compute_infer_us"] = d.compute_infer.MeanUs();
  out["compute_output_us"] = d.compute_output.MeanUs();
  out["request_us"] = d.success.MeanUs();
  out["execution_count"] = d.execution_count;
  out["inference_count"] = d.inference_count;
  out["requests_per_execution"] = d.RequestsPerExecution();
  out["rows_per_execution"] = d.RowsPerExecution();
  return out;
}

// A latency of `stats`, or "-" when no request succeeded.
std::string Ms(const LatencyStats& stats, double value) {
  return stats.count == 0 ? "-" : absl::StrFormat("%.3f", value);
}

std::string Us(const PhaseDelta& phase) {
  return phase.count == 0 ? "-" : absl::StrFormat("%.1f", phase.MeanUs());
}

}  // namespace

std::string StepLabel(bool open_loop, double level) {
  return open_loop ? absl::StrFormat("rate %g/s", level)
                   : absl::StrFormat("conc %d", static_cast<int>(level));
}

std::string DescribeRun(const LoadOptions& options) {
  const bool open_loop = !options.rates.empty();
  std::string mode =
      open_loop ? absl::StrFormat(
                      "open loop (%s arrivals, at most %d in "
                      "flight)",
                      ArrivalsName(options.arrivals), options.max_in_flight)
                : std::string("closed loop");
  std::string length = options.requests > 0
                           ? absl::StrFormat("%d requests", options.requests)
                           : absl::StrFormat("%g s", options.duration_s);
  return absl::StrFormat(
      "%s model %s: batch %d %s %s, %s, %d channel(s), %s, %s per step after "
      "%g s warm-up",
      options.target, options.model_name, options.batch,
      options.grad ? "fwd+bwd" : "fwd", WireTypeName(options.dtype),
      options.stream ? "ModelStreamInfer" : "ModelInfer", options.channels,
      mode, length, options.warmup_s);
}

std::string FormatProgressLine(const LoadProgress& progress) {
  std::string line = absl::StrFormat(
      "step %d/%d  %s  %s %.1f s  answered %d  in flight %d", progress.step + 1,
      progress.steps, StepLabel(progress.open_loop, progress.level),
      progress.warming_up ? "warm-up" : "measuring", progress.elapsed_s,
      progress.answered, progress.in_flight);
  if (!progress.warming_up) {
    absl::StrAppendFormat(&line, "  %.1f req/s", progress.requests_per_second);
  }
  if (progress.errors > 0) absl::StrAppend(&line, "  errors ", progress.errors);
  return line;
}

std::string FormatStepLine(const StepResult& result, int steps) {
  const double level = result.open_loop ? result.rate : result.concurrency;
  const LatencyStats& l = result.latency_ms;
  std::string line = absl::StrFormat(
      "step %d/%d  %s: %.1f req/s  %.0f rows/s  p50 %s ms  p99 %s ms  "
      "errors %d",
      result.index + 1, steps, StepLabel(result.open_loop, level),
      result.requests_per_second, result.rows_per_second, Ms(l, l.p50),
      Ms(l, l.p99), result.errors);
  if (result.open_loop) {
    absl::StrAppendFormat(&line, "  dropped %d  late %d", result.dropped,
                          result.late);
  }
  if (result.timed_out) absl::StrAppend(&line, "  (cut short: global timeout)");
  return line;
}

std::string FormatTable(const LoadOptions& options,
                        const std::vector<StepResult>& steps) {
  const bool open_loop = !options.rates.empty();
  std::string out = absl::StrCat(
      DescribeRun(options),
      "\nLatency is the client's round trip. After \"|\": the server's own "
      "mean time per request\n(ModelStatistics: queue, compute_input, "
      "compute_infer, compute_output) and requests per model execution.\n");
  absl::StrAppendFormat(&out, "%-10s %10s %11s %8s %8s %8s %8s %8s %7s",
                        open_loop ? "rate/s" : "conc", "req/s", "rows/s",
                        "p50 ms", "p90 ms", "p95 ms", "p99 ms", "max ms",
                        "errors");
  if (open_loop) absl::StrAppendFormat(&out, " %8s %7s", "dropped", "late");
  absl::StrAppendFormat(&out, " | %9s %9s %9s %9s %8s\n", "queue us",
                        "input us", "infer us", "output us", "req/exec");
  std::set<std::string> notes;
  for (const StepResult& step : steps) {
    const std::string level = open_loop ? absl::StrFormat("%g", step.rate)
                                        : absl::StrCat(step.concurrency);
    const LatencyStats& l = step.latency_ms;
    absl::StrAppendFormat(&out, "%-10s %10.1f %11.0f %8s %8s %8s %8s %8s %7d",
                          level, step.requests_per_second, step.rows_per_second,
                          Ms(l, l.p50), Ms(l, l.p90), Ms(l, l.p95),
                          Ms(l, l.p99), Ms(l, l.max), step.errors);
    if (open_loop) {
      absl::StrAppendFormat(&out, " %8d %7d", step.dropped, step.late);
    }
    if (step.server.available) {
      const ServerStatsDelta& d = step.server.delta;
      absl::StrAppendFormat(
          &out, " | %9s %9s %9s %9s %8s\n", Us(d.queue), Us(d.compute_input),
          Us(d.compute_infer), Us(d.compute_output),
          d.execution_count == 0
              ? std::string("-")
              : absl::StrFormat("%.2f", d.RequestsPerExecution()));
    } else {
      absl::StrAppend(&out, " | (no server statistics)\n");
      if (!step.server.note.empty()) notes.insert(step.server.note);
    }
  }
  for (const StepResult& step : steps) {
    const double level = open_loop ? step.rate : step.concurrency;
    if (!step.errors_by_code.empty()) {
      std::vector<std::string> parts;
      for (const auto& [code, count] : step.errors_by_code) {
        auto first = step.first_error.find(code);
        parts.push_back(absl::StrFormat(
            "%s %d (e.g. \"%s\")", code, count,
            first == step.first_error.end() ? "" : first->second));
      }
      absl::StrAppendFormat(&out, "errors at %s: %s\n",
                            StepLabel(open_loop, level),
                            absl::StrJoin(parts, ", "));
    }
    if (step.timed_out) {
      absl::StrAppendFormat(&out, "%s was cut short by the global timeout\n",
                            StepLabel(open_loop, level));
    }
  }
  for (const std::string& note : notes) {
    absl::StrAppend(&out, "note: ", note, "\n");
  }
  return out;
}

std::string FormatCsv(const LoadOptions& options,
                      const std::vector<StepResult>& steps) {
  std::string out =
      "step,mode,concurrency,rate,arrivals,batch,grad,dtype,stream,channels,"
      "seconds,requests,successes,errors,dropped,late,req_per_s,rows_per_s,"
      "latency_count,p50_ms,p90_ms,p95_ms,p99_ms,max_ms,mean_ms,min_ms,"
      "errors_by_code,server_stats,server_success_count,server_fail_count,"
      "server_request_us,server_queue_us,server_compute_input_us,"
      "server_compute_infer_us,server_compute_output_us,"
      "server_execution_count,server_inference_count,"
      "server_requests_per_execution,server_rows_per_execution,timed_out\n";
  for (const StepResult& step : steps) {
    const LatencyStats& l = step.latency_ms;
    std::vector<std::string> row = {
        absl::StrCat(step.index),
        step.open_loop ? "open" : "closed",
        step.open_loop ? "" : absl::StrCat(step.concurrency),
        step.open_loop ? Num(step.rate) : "",
        step.open_loop ? ArrivalsName(options.arrivals) : "",
        absl::StrCat(options.batch),
        options.grad ? "1" : "0",
        WireTypeName(options.dtype),
        options.stream ? "1" : "0",
        absl::StrCat(options.channels),
        Num(step.seconds),
        absl::StrCat(step.requests),
        absl::StrCat(step.successes),
        absl::StrCat(step.errors),
        absl::StrCat(step.dropped),
        absl::StrCat(step.late),
        Num(step.requests_per_second),
        Num(step.rows_per_second),
        absl::StrCat(l.count),
        Num(l.p50),
        Num(l.p90),
        Num(l.p95),
        Num(l.p99),
        Num(l.max),
        Num(l.mean),
        Num(l.min),
        ErrorsByCode(step),
        step.server.available ? "1" : "0",
    };
    if (step.server.available) {
      const ServerStatsDelta& d = step.server.delta;
      for (std::string cell : {
               absl::StrCat(d.success.count),
               absl::StrCat(d.fail.count),
               Num(d.success.MeanUs()),
               Num(d.queue.MeanUs()),
               Num(d.compute_input.MeanUs()),
               Num(d.compute_infer.MeanUs()),
               Num(d.compute_output.MeanUs()),
               absl::StrCat(d.execution_count),
               absl::StrCat(d.inference_count),
               Num(d.RequestsPerExecution()),
               Num(d.RowsPerExecution()),
           }) {
        row.push_back(std::move(cell));
      }
    } else {
      row.insert(row.end(), 11, "");
    }
    row.push_back(step.timed_out ? "1" : "0");
    absl::StrAppend(&out, absl::StrJoin(row, ","), "\n");
  }
  return out;
}

std::string FormatJson(const LoadOptions& options,
                       const std::vector<StepResult>& steps) {
  const bool open_loop = !options.rates.empty();
  json out;
  out["tool"] = "reluserve-load";
  out["target"] = options.target;
  out["model"] = options.model_name;
  out["model_version"] = options.model_version;
  out["mode"] = open_loop ? "open" : "closed";
  if (open_loop) {
    out["arrivals"] = ArrivalsName(options.arrivals);
    out["max_in_flight"] = options.max_in_flight;
  }
  out["batch"] = options.batch;
  out["grad"] = options.grad;
  out["dtype"] = WireTypeName(options.dtype);
  out["stream"] = options.stream;
  out["channels"] = options.channels;
  out["duration_s"] = options.duration_s;
  out["requests_per_step"] = options.requests;
  out["warmup_s"] = options.warmup_s;
  out["timeout_ms"] = options.timeout.count();
  out["seed"] = options.seed;
  json& list = out["steps"] = json::array();
  for (const StepResult& step : steps) {
    json s;
    s["step"] = step.index;
    if (step.open_loop) {
      s["rate"] = step.rate;
    } else {
      s["concurrency"] = step.concurrency;
    }
    s["seconds"] = step.seconds;
    s["requests"] = step.requests;
    s["successes"] = step.successes;
    s["errors"] = step.errors;
    s["errors_by_code"] = step.errors_by_code;
    s["first_error"] = step.first_error;
    s["dropped"] = step.dropped;
    s["late"] = step.late;
    s["requests_per_second"] = step.requests_per_second;
    s["rows_per_second"] = step.rows_per_second;
    const LatencyStats& l = step.latency_ms;
    s["latency_ms"] = {{"count", l.count}, {"min", l.min}, {"mean", l.mean},
                       {"p50", l.p50},     {"p90", l.p90}, {"p95", l.p95},
                       {"p99", l.p99},     {"max", l.max}};
    s["server"] = ServerJson(step.server);
    s["timed_out"] = step.timed_out;
    list.push_back(std::move(s));
  }
  return out.dump(2) + "\n";
}

std::string GnuplotData(const std::vector<StepResult>& steps) {
  std::string out = "# label req_per_s p50_ms p99_ms\n";
  for (const StepResult& step : steps) {
    if (step.successes == 0) continue;
    const std::string label = step.open_loop
                                  ? absl::StrFormat("r%g", step.rate)
                                  : absl::StrFormat("c%d", step.concurrency);
    absl::StrAppendFormat(&out, "\"%s\" %.9g %.9g %.9g\n", label,
                          step.requests_per_second, step.latency_ms.p50,
                          step.latency_ms.p99);
  }
  return out;
}

std::string GnuplotScript(const std::string& data_path,
                          const std::string& png_path,
                          const std::string& title) {
  const std::string data = GnuplotQuote(data_path);
  return absl::StrCat(
      "set terminal pngcairo size 1000,640 noenhanced font 'sans,10'\n",
      "set output ", GnuplotQuote(png_path), "\n",  //
      "set title ", GnuplotQuote(title), "\n",
      "set xlabel 'throughput (requests/s)'\n", "set ylabel 'latency (ms)'\n",
      "set grid\n", "set key top left\n", "set xrange [0:*]\n",
      "set yrange [0:*]\n", "plot ", data,
      " using 2:3 with linespoints pt 7 title 'p50', \\\n", "     ", data,
      " using 2:4 with linespoints pt 5 title 'p99', \\\n", "     ", data,
      " using 2:4:1 with labels offset char 0,1 notitle\n");
}

absl::Status WriteTextFile(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (file) file << text;
  if (file) file.close();
  if (!file) {
    return absl::InternalError(
        absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status PlotLatencyVsThroughput(const LoadOptions& options,
                                     const std::vector<StepResult>& steps,
                                     const std::string& png_path) {
  const std::string gnuplot = FindOnPath("gnuplot");
  if (gnuplot.empty()) {
    return absl::FailedPreconditionError(
        "--plot needs gnuplot, which is not on the PATH: install the Debian "
        "package gnuplot-nox (apt-get install gnuplot-nox, or "
        "scripts/install-deps.sh)");
  }
  const std::string data = GnuplotData(steps);
  if (data.find('\n') == data.size() - 1) {
    return absl::FailedPreconditionError(
        "--plot: no step had a successful request to plot");
  }
  absl::StatusOr<std::string> data_path = TempFile(".dat");
  if (!data_path.ok()) return data_path.status();
  absl::StatusOr<std::string> script_path = TempFile(".gp");
  if (!script_path.ok()) {
    unlink(data_path->c_str());
    return script_path.status();
  }
  const std::string title =
      absl::StrCat("reluserve-load: ", DescribeRun(options));
  absl::Status status = WriteTextFile(*data_path, data);
  if (status.ok()) {
    status =
        WriteTextFile(*script_path, GnuplotScript(*data_path, png_path, title));
  }
  if (status.ok()) status = RunBounded(gnuplot, {*script_path});
  unlink(data_path->c_str());
  unlink(script_path->c_str());
  return status;
}

}  // namespace reluserve
