#include "server/runtime/dead_relu_monitor.h"

#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace reluserve {
namespace {

// Rows of `units` outputs; unit u is positive in row r when alive(r, u).
template <typename Alive>
std::vector<float> Outputs(int64_t rows, int64_t units, Alive alive) {
  std::vector<float> outputs(static_cast<size_t>(rows * units), 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t u = 0; u < units; ++u) {
      if (alive(r, u)) outputs[r * units + u] = 1.5f;
    }
  }
  return outputs;
}

DeadReluMonitor::Options Window(int64_t rows, double warn = 1.0) {
  DeadReluMonitor::Options options;
  options.window_rows = rows;
  options.warn_fraction = warn;
  return options;
}

TEST(DeadReluMonitorTest, NothingSeenMeansNothingKnownDead) {
  DeadReluMonitor monitor(8, Window(100), "layer");
  const DeadReluMonitor::Snapshot snapshot = monitor.Read();
  EXPECT_EQ(snapshot.units, 8);
  EXPECT_EQ(snapshot.dead_units, 0);
  EXPECT_EQ(snapshot.window_rows, 0);
}

TEST(DeadReluMonitorTest, CountsUnitsThatWereNeverPositive) {
  DeadReluMonitor monitor(10, Window(100), "layer");
  // Units 0, 3 and 7 never fire; the others fire in one row each.
  const std::vector<float> outputs = Outputs(6, 10, [](int64_t r, int64_t u) {
    return u != 0 && u != 3 && u != 7 && u % 6 == r;
  });
  monitor.Observe(outputs.data(), 6);
  const DeadReluMonitor::Snapshot snapshot = monitor.Read();
  EXPECT_EQ(snapshot.dead_units, 3);
  EXPECT_EQ(snapshot.window_rows, 6);
}

TEST(DeadReluMonitorTest, ZeroAndNegativeAndNaNOutputsAreNotPositive) {
  DeadReluMonitor monitor(4, Window(100), "layer");
  const std::vector<float> outputs = {0.0f, -0.0f, std::nanf(""), 1e-30f};
  monitor.Observe(outputs.data(), 1);
  EXPECT_EQ(monitor.Read().dead_units, 3);
}

TEST(DeadReluMonitorTest, AUnitIsDeadOnceItsLastPositiveRowLeavesTheWindow) {
  DeadReluMonitor monitor(2, Window(5), "layer");
  // Unit 0 fires in row 1 (of rows 0..2); unit 1 fires always.
  std::vector<float> first =
      Outputs(3, 2, [](int64_t r, int64_t u) { return u == 1 || r == 1; });
  monitor.Observe(first.data(), 3);
  EXPECT_EQ(monitor.Read().dead_units, 0);
  // Rows 3..5: unit 0 silent. The window (last 5 rows: 1..5) still holds
  // row 1.
  std::vector<float> silent =
      Outputs(3, 2, [](int64_t, int64_t u) { return u == 1; });
  monitor.Observe(silent.data(), 3);
  EXPECT_EQ(monitor.Read().window_rows, 5);
  EXPECT_EQ(monitor.Read().dead_units, 0);
  // Row 6: the window is rows 2..6; unit 0 has been 0 in all of them.
  monitor.Observe(silent.data(), 1);
  EXPECT_EQ(monitor.Read().dead_units, 1);
  EXPECT_EQ(monitor.Read().window_rows, 5);
  // One positive row brings it back.
  std::vector<float> revived =
      Outputs(1, 2, [](int64_t, int64_t) { return true; });
  monitor.Observe(revived.data(), 1);
  EXPECT_EQ(monitor.Read().dead_units, 0);
}

TEST(DeadReluMonitorTest, ConcurrentObserversLoseNoRow) {
  constexpr int64_t kUnits = 64, kRows = 7, kCalls = 2000;
  DeadReluMonitor monitor(kUnits, Window(1 << 30), "layer");
  // Units below 32 fire in every call's last row; the others never.
  const std::vector<float> outputs =
      Outputs(kRows, kUnits,
              [](int64_t r, int64_t u) { return u < 32 && r == kRows - 1; });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int64_t i = 0; i < kCalls; ++i) {
        monitor.Observe(outputs.data(), kRows);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const DeadReluMonitor::Snapshot snapshot = monitor.Read();
  EXPECT_EQ(snapshot.window_rows, 4 * kCalls * kRows);
  EXPECT_EQ(snapshot.dead_units, 32);
}

class DeadReluWarningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
    auto logger = std::make_shared<spdlog::logger>("capture", sink);
    logger->set_pattern("%l %v");
    spdlog::set_default_logger(logger);
  }
  void TearDown() override { spdlog::set_default_logger(previous_); }

  std::ostringstream log_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_F(DeadReluWarningTest, WarnsOnceWhenTheDeadFractionFirstExceedsIt) {
  // Window 100: checked every 10 rows.
  DeadReluMonitor monitor(4, Window(100, /*warn=*/0.5), "model m v1 layer 0");
  const std::vector<float> three_dead =
      Outputs(10, 4, [](int64_t, int64_t u) { return u == 0; });
  const std::vector<float> all_alive =
      Outputs(10, 4, [](int64_t, int64_t) { return true; });
  monitor.Observe(three_dead.data(), 10);
  monitor.Observe(three_dead.data(), 10);
  const std::string after_dead = log_.str();
  EXPECT_NE(after_dead.find("warning dead ReLU units in model m v1 layer 0: 3 "
                            "of 4 (75.0%)"),
            std::string::npos)
      << after_dead;
  // Said once, not at every check.
  EXPECT_EQ(after_dead.find("warning", 1), std::string::npos) << after_dead;
  monitor.Observe(all_alive.data(), 10);
  EXPECT_NE(log_.str().find("info dead ReLU units in model m v1 layer 0: 0 "
                            "of 4 (0.0%)"),
            std::string::npos)
      << log_.str();
}

TEST_F(DeadReluWarningTest, StaysQuietAtOrBelowTheFraction) {
  DeadReluMonitor monitor(4, Window(100, /*warn=*/0.5), "layer");
  const std::vector<float> half_dead =
      Outputs(50, 4, [](int64_t, int64_t u) { return u < 2; });
  monitor.Observe(half_dead.data(), 50);
  EXPECT_EQ(log_.str(), "");
}

}  // namespace
}  // namespace reluserve
