// reluserve-load's plot: p50 and p99 latency against throughput, one point
// per step, drawn by gnuplot (Debian package gnuplot-nox) into a PNG.

#ifndef RELUSERVE_CLIENT_LOAD_PLOT_H_
#define RELUSERVE_CLIENT_LOAD_PLOT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/load_generator.h"

namespace reluserve {

// The plot's title: three short lines (the target; model, request and
// transport; mode and step length), so that it fits the 1000-pixel-wide
// image.
std::string PlotTitle(const LoadOptions& options);

// gnuplot's input: one line per step with successes, "label req/s p50 p99".
std::string GnuplotData(const std::vector<StepResult>& steps);

// A gnuplot script that draws p50 and p99 latency (ms) against throughput
// (req/s) from `data_path` into the PNG `png_path`. `title` may have several
// lines, separated by '\n'.
std::string GnuplotScript(const std::string& data_path,
                          const std::string& png_path,
                          const std::string& title);

// Writes the data and script to temporary files and runs gnuplot on them
// (at most 60 s). FailedPrecondition naming the Debian package when gnuplot
// is not on the PATH; Internal when it fails.
absl::Status PlotLatencyVsThroughput(const LoadOptions& options,
                                     const std::vector<StepResult>& steps,
                                     const std::string& png_path);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_LOAD_PLOT_H_
