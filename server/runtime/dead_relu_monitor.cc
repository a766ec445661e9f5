#include "server/runtime/dead_relu_monitor.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "spdlog/spdlog.h"

namespace reluserve {

DeadReluMonitor::DeadReluMonitor(int64_t units, const Options& options,
                                 std::string name)
    : units_(units),
      options_(options),
      name_(std::move(name)),
      check_every_rows_(static_cast<uint64_t>(
          std::max<int64_t>(1, options.window_rows / 10))),
      last_positive_row_(new std::atomic<uint64_t>[units]) {
  for (int64_t unit = 0; unit < units_; ++unit) last_positive_row_[unit] = 0;
}

void DeadReluMonitor::Observe(const float* outputs, int64_t rows) {
  if (rows <= 0) return;
  const uint64_t first_row = rows_seen_.fetch_add(static_cast<uint64_t>(rows),
                                                  std::memory_order_relaxed);
  thread_local std::vector<int32_t> searching;
  searching.resize(static_cast<size_t>(units_));
  for (int64_t unit = 0; unit < units_; ++unit) {
    searching[unit] = static_cast<int32_t>(unit);
  }
  size_t left = searching.size();
  for (int64_t row = rows - 1; row >= 0 && left > 0; --row) {
    const float* values = outputs + row * units_;
    const uint64_t number = first_row + static_cast<uint64_t>(row) + 1;
    size_t kept = 0;
    for (size_t i = 0; i < left; ++i) {
      const int32_t unit = searching[i];
      if (values[unit] > 0.0f) {
        std::atomic<uint64_t>& last = last_positive_row_[unit];
        uint64_t seen = last.load(std::memory_order_relaxed);
        while (seen < number && !last.compare_exchange_weak(
                                    seen, number, std::memory_order_relaxed)) {
        }
      } else {
        searching[kept++] = unit;
      }
    }
    left = kept;
  }
  const uint64_t rows_seen = first_row + static_cast<uint64_t>(rows);
  if (first_row / check_every_rows_ != rows_seen / check_every_rows_) {
    CheckWarning(rows_seen);
  }
}

DeadReluMonitor::Snapshot DeadReluMonitor::Read() const {
  return ReadAt(rows_seen_.load(std::memory_order_relaxed));
}

DeadReluMonitor::Snapshot DeadReluMonitor::ReadAt(uint64_t rows_seen) const {
  Snapshot snapshot;
  snapshot.units = units_;
  const uint64_t window = std::min<uint64_t>(
      rows_seen,
      static_cast<uint64_t>(std::max<int64_t>(options_.window_rows, 0)));
  snapshot.window_rows = static_cast<int64_t>(window);
  if (window == 0) return snapshot;  // nothing seen: nothing known dead
  const uint64_t window_start = rows_seen - window;  // rows numbered from 1
  for (int64_t unit = 0; unit < units_; ++unit) {
    if (last_positive_row_[unit].load(std::memory_order_relaxed) <=
        window_start) {
      ++snapshot.dead_units;
    }
  }
  return snapshot;
}

void DeadReluMonitor::CheckWarning(uint64_t rows_seen) {
  const Snapshot snapshot = ReadAt(rows_seen);
  const double fraction = snapshot.units == 0
                              ? 0.0
                              : static_cast<double>(snapshot.dead_units) /
                                    static_cast<double>(snapshot.units);
  const bool above = fraction > options_.warn_fraction;
  if (above == warned_.load(std::memory_order_relaxed)) return;
  if (warned_.exchange(above) == above) return;  // another thread said it
  if (above) {
    spdlog::warn(
        "dead ReLU units in {}: {} of {} ({:.1f}%) gave 0 for every one of "
        "the last {} rows (more than --dead-relu-warn {:.1f}%); check the "
        "weights, the bias and the inputs' scale",
        name_, snapshot.dead_units, snapshot.units, 100.0 * fraction,
        snapshot.window_rows, 100.0 * options_.warn_fraction);
  } else {
    spdlog::info(
        "dead ReLU units in {}: {} of {} ({:.1f}%) in the last {} rows, back "
        "to --dead-relu-warn {:.1f}% or below",
        name_, snapshot.dead_units, snapshot.units, 100.0 * fraction,
        snapshot.window_rows, 100.0 * options_.warn_fraction);
  }
}

ReluMonitors::ReluMonitors(const std::vector<ReluLayer>& layers,
                           const DeadReluMonitor::Options& options,
                           const std::string& name) {
  for (const ReluLayer& layer : layers) {
    labels_.push_back(layer.label);
    monitors_.push_back(std::make_unique<DeadReluMonitor>(
        layer.units, options, name + " layer " + layer.label));
  }
}

std::vector<ReluMonitors::Layer> ReluMonitors::Read() const {
  std::vector<Layer> layers;
  for (size_t i = 0; i < monitors_.size(); ++i) {
    layers.push_back({labels_[i], monitors_[i]->Read()});
  }
  return layers;
}

}  // namespace reluserve
