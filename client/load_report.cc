#include "client/load_report.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace reluserve {
namespace {

using nlohmann::json;

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
  const std::string calls =
      options.protocol == Protocol::kHttp
          ? absl::StrFormat(
                "HTTP POST infer (%s tensors), a connection per request in "
                "flight",
                options.http_tensors == HttpTensors::kJson ? "JSON" : "binary")
          : absl::StrFormat("%s, %d channel(s)",
                            options.stream ? "ModelStreamInfer" : "ModelInfer",
                            options.channels);
  return absl::StrFormat(
      "%s model %s: batch %d %s %s, %s, %s, %s per step after %g s warm-up",
      options.target, options.model_name, options.batch,
      options.grad ? "fwd+bwd" : "fwd", WireTypeName(options.dtype), calls,
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
  if (result.server_gone) {
    absl::StrAppendFormat(&line, "  (stopped: server went away at t=%.2f s)",
                          result.server_gone_at_s);
  }
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
      // A server gone has its own line below.
      if (!step.server.note.empty() && !step.server_gone) {
        notes.insert(step.server.note);
      }
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
    if (step.held_back > 0) {
      absl::StrAppendFormat(&out,
                            "%s: %d of the dropped arrivals were held back "
                            "while backing off after UNAVAILABLE\n",
                            StepLabel(open_loop, level), step.held_back);
    }
    if (step.timed_out) {
      absl::StrAppendFormat(&out, "%s was cut short by the global timeout\n",
                            StepLabel(open_loop, level));
    }
    if (step.server_gone) {
      const size_t planned =
          open_loop ? options.rates.size() : options.concurrency.size();
      const size_t skipped =
          planned > steps.size() ? planned - steps.size() : 0;
      absl::StrAppendFormat(
          &out,
          "server went away at t=%.2f s (during %s; only UNAVAILABLE answers "
          "since, e.g. \"%s\"): the step stopped early%s\n",
          step.server_gone_at_s, StepLabel(open_loop, level),
          step.server_gone_error,
          skipped > 0 ? absl::StrFormat(", %d later step(s) skipped", skipped)
                      : std::string());
    }
  }
  if (open_loop) {
    absl::StrAppendFormat(
        &out,
        "dropped: arrivals not sent (--max-in-flight requests unanswered, or "
        "backing off after UNAVAILABLE)\n"
        "late: requests sent more than %d ms after their scheduled time (the "
        "client fell behind its own schedule)\n",
        static_cast<int>(kLoadLateAfter.count()));
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
      "server_requests_per_execution,server_rows_per_execution,timed_out,"
      "held_back,server_gone,server_gone_at_s\n";
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
    row.push_back(absl::StrCat(step.held_back));
    row.push_back(step.server_gone ? "1" : "0");
    row.push_back(step.server_gone ? Num(step.server_gone_at_s) : "");
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
  out["protocol"] = std::string(ProtocolName(options.protocol));
  if (options.protocol == Protocol::kHttp) {
    out["http_tensors"] =
        options.http_tensors == HttpTensors::kJson ? "json" : "binary";
  }
  out["model"] = options.model_name;
  out["model_version"] = options.model_version;
  out["mode"] = open_loop ? "open" : "closed";
  if (open_loop) {
    out["arrivals"] = ArrivalsName(options.arrivals);
    out["max_in_flight"] = options.max_in_flight;
    // A step's "late": requests sent more than this after their schedule.
    out["late_after_ms"] = kLoadLateAfter.count();
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
  out["connect_timeout_ms"] = options.connect_timeout.count();
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
    s["held_back"] = step.held_back;
    s["late"] = step.late;
    s["requests_per_second"] = step.requests_per_second;
    s["rows_per_second"] = step.rows_per_second;
    const LatencyStats& l = step.latency_ms;
    s["latency_ms"] = {{"count", l.count}, {"min", l.min}, {"mean", l.mean},
                       {"p50", l.p50},     {"p90", l.p90}, {"p95", l.p95},
                       {"p99", l.p99},     {"max", l.max}};
    s["server"] = ServerJson(step.server);
    s["timed_out"] = step.timed_out;
    s["server_gone"] = step.server_gone;
    if (step.server_gone) {
      s["server_gone_at_s"] = step.server_gone_at_s;
      s["server_gone_error"] = step.server_gone_error;
    }
    list.push_back(std::move(s));
  }
  return out.dump(2) + "\n";
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

}  // namespace reluserve
