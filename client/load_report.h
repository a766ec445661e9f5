// How reluserve-load shows its results: progress lines, the final table,
// CSV and JSON; and (client/load_plot.h, included here) a gnuplot
// latency-vs-throughput plot.
//
// All functions are pure formatting except the Write*/Plot* ones, which touch
// the file system (and run gnuplot); none keeps state.

#ifndef RELUSERVE_CLIENT_LOAD_REPORT_H_
#define RELUSERVE_CLIENT_LOAD_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/load_generator.h"
#include "client/load_plot.h"

namespace reluserve {

// One line naming the run's settings: target, model, batch, pass, dtype,
// transport, channels, mode, step length.
std::string DescribeRun(const LoadOptions& options);

// "conc 4" or "rate 250/s".
std::string StepLabel(bool open_loop, double level);

// The live line for a tick (no newline, no carriage return).
std::string FormatProgressLine(const LoadProgress& progress);

// One plain line summarising a finished step (no newline).
std::string FormatStepLine(const StepResult& result, int steps);

// The final table, then each step's errors by code and notes.
std::string FormatTable(const LoadOptions& options,
                        const std::vector<StepResult>& steps);

// A header row, then one row per step with every number of StepResult.
std::string FormatCsv(const LoadOptions& options,
                      const std::vector<StepResult>& steps);

// {"tool": ..., the options..., "steps": [one object per step]}.
std::string FormatJson(const LoadOptions& options,
                       const std::vector<StepResult>& steps);

absl::Status WriteTextFile(const std::string& path, const std::string& text);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_LOAD_REPORT_H_
