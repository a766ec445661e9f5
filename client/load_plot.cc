#include "client/load_plot.h"

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "client/load_report.h"

extern char** environ;

namespace reluserve {
namespace {

constexpr auto kGnuplotTimeout = std::chrono::seconds(60);

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

// A title of one or more lines: single-quoted pieces joined by "\n".
std::string GnuplotTitle(const std::string& title) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(title, '\n')) {
    lines.push_back(GnuplotQuote(std::string(line)));
  }
  return absl::StrJoin(lines, " . \"\\n\" . ");
}

}  // namespace

std::string PlotTitle(const LoadOptions& options) {
  const bool open_loop = !options.rates.empty();
  const std::string mode =
      open_loop
          ? absl::StrFormat("open loop (%s arrivals)",
                            options.arrivals == Arrivals::kConstant ? "constant"
                                                                    : "poisson")
          : std::string("closed loop");
  const std::string length =
      options.requests > 0 ? absl::StrFormat("%d requests", options.requests)
                           : absl::StrFormat("%g s", options.duration_s);
  return absl::StrFormat(
      "reluserve-load: latency vs throughput, target %s\n"
      "model %s, batch %d %s %s, %s, %d channel(s)\n"
      "%s, %s per step after %g s warm-up",
      options.target, options.model_name, options.batch,
      options.grad ? "fwd+bwd" : "fwd", WireTypeName(options.dtype),
      options.stream ? "ModelStreamInfer" : "ModelInfer", options.channels,
      mode, length, options.warmup_s);
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
      "set title ", GnuplotTitle(title), "\n",
      "set xlabel 'throughput (requests/s)'\n", "set ylabel 'latency (ms)'\n",
      "set grid\n", "set key top left\n", "set xrange [0:*]\n",
      "set yrange [0:*]\n", "plot ", data,
      " using 2:3 with linespoints pt 7 title 'p50', \\\n", "     ", data,
      " using 2:4 with linespoints pt 5 title 'p99', \\\n", "     ", data,
      " using 2:4:1 with labels offset char 0,1 notitle\n");
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
  const std::string title = PlotTitle(options);
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
