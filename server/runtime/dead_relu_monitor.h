#ifndef RELUSERVE_SERVER_RUNTIME_DEAD_RELU_MONITOR_H_
#define RELUSERVE_SERVER_RUNTIME_DEAD_RELU_MONITOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "server/core/model.h"

namespace reluserve {

// Watches one ReLU layer's outputs for dead units: units whose output was 0
// for every row of a sliding window of the last `window_rows` rows (or of
// all rows seen, while fewer). Rows are numbered in the order executions
// report them; each unit keeps the number of the last row where it was
// positive, so a unit is dead when that row has left the window.
//
// Observe() costs one pass over the rows from the last backwards, dropping
// every unit once it is seen positive: for a healthy layer a few rows, for a
// dead unit every row.
//
// Thread safety: Observe() and Read() may be called from any number of
// threads at once (atomics only). Rows reported by concurrent executions
// interleave, as their requests do.
class DeadReluMonitor {
 public:
  struct Options {
    int64_t window_rows = 10000;
    // A warning is logged when the dead fraction first exceeds this (and an
    // info line when it falls back to it or below); checked each time
    // another tenth of a window of rows has been observed.
    double warn_fraction = 0.5;
  };
  struct Snapshot {
    int64_t units = 0;
    int64_t dead_units = 0;
    int64_t window_rows = 0;
  };

  // `name` identifies the layer in log lines, e.g. "model linear_relu v1
  // layer 0".
  DeadReluMonitor(int64_t units, const Options& options, std::string name);

  DeadReluMonitor(const DeadReluMonitor&) = delete;
  DeadReluMonitor& operator=(const DeadReluMonitor&) = delete;

  // `outputs`: [rows, units] row-major, the layer's ReLU outputs for one
  // execution.
  void Observe(const float* outputs, int64_t rows);

  Snapshot Read() const;

 private:
  Snapshot ReadAt(uint64_t rows_seen) const;
  void CheckWarning(uint64_t rows_seen);

  const int64_t units_;
  const Options options_;
  const std::string name_;
  const uint64_t check_every_rows_;
  std::atomic<uint64_t> rows_seen_{0};
  // Per unit: 1 + the number of the last row where it was positive; 0 if
  // never.
  const std::unique_ptr<std::atomic<uint64_t>[]> last_positive_row_;
  std::atomic<bool> warned_{false};
};

// One monitor per ReLU layer of a model, fed as the model computes.
//
// Thread safety: as DeadReluMonitor's.
class ReluMonitors final : public ActivationObserver {
 public:
  // `name` prefixes each layer's log name, e.g. "model linear_relu v1".
  ReluMonitors(const std::vector<ReluLayer>& layers,
               const DeadReluMonitor::Options& options,
               const std::string& name);

  void Observe(size_t relu, const float* values, int64_t rows) override {
    monitors_[relu]->Observe(values, rows);
  }

  struct Layer {
    std::string label;
    DeadReluMonitor::Snapshot snapshot;
  };
  std::vector<Layer> Read() const;

 private:
  std::vector<std::string> labels_;
  std::vector<std::unique_ptr<DeadReluMonitor>> monitors_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_RUNTIME_DEAD_RELU_MONITOR_H_
