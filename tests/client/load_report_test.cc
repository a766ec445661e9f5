#include "client/load_report.h"

#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace reluserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<StepResult> TwoSteps() {
  std::vector<StepResult> steps(2);
  steps[0].index = 0;
  steps[0].concurrency = 1;
  steps[0].seconds = 2.0;
  steps[0].requests = steps[0].successes = 2000;
  steps[0].requests_per_second = 1000;
  steps[0].rows_per_second = 4000;
  steps[0].latency_ms = {2000, 0.5, 0.9, 0.8, 1.1, 1.2, 1.5, 3.0};
  steps[0].server.available = true;
  steps[0].server.delta.success = {2000, 2000 * 700'000ull};
  steps[0].server.delta.queue = {2000, 2000 * 10'000ull};
  steps[0].server.delta.compute_input = {2000, 2000 * 20'000ull};
  steps[0].server.delta.compute_infer = {2000, 2000 * 300'000ull};
  steps[0].server.delta.compute_output = {2000, 2000 * 5'000ull};
  steps[0].server.delta.execution_count = 1000;
  steps[0].server.delta.inference_count = 8000;

  steps[1].index = 1;
  steps[1].concurrency = 4;
  steps[1].seconds = 2.0;
  steps[1].successes = 3000;
  steps[1].errors = 7;
  steps[1].requests = 3007;
  steps[1].errors_by_code = {{"INVALID_ARGUMENT", 5}, {"UNAVAILABLE", 2}};
  steps[1].first_error = {{"INVALID_ARGUMENT", "input 'x': bad"},
                          {"UNAVAILABLE", "queue full"}};
  steps[1].requests_per_second = 1500;
  steps[1].rows_per_second = 6000;
  steps[1].latency_ms = {3000, 1.0, 2.6, 2.5, 3.0, 3.5, 4.0, 9.0};
  steps[1].server.note = "server does not implement ModelStatistics";
  return steps;
}

LoadOptions Options() {
  LoadOptions options;
  options.target = "127.0.0.1:1234";
  options.concurrency = {1, 4};
  options.batch = 4;
  options.duration_s = 2;
  return options;
}

TEST(LoadReportTest, CsvHasAHeaderAndOneRowPerStepOfEqualWidth) {
  const std::string csv = FormatCsv(Options(), TwoSteps());
  std::vector<std::string> lines = absl::StrSplit(csv, '\n');
  ASSERT_EQ(lines.size(), 4u);  // header, 2 rows, "" after the last newline
  EXPECT_EQ(lines[3], "");
  const std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  for (const char* column :
       {"step", "concurrency", "req_per_s", "rows_per_s", "p50_ms", "p90_ms",
        "p95_ms", "p99_ms", "max_ms", "errors", "errors_by_code",
        "server_queue_us", "server_compute_input_us", "server_compute_infer_us",
        "server_compute_output_us", "server_execution_count",
        "server_requests_per_execution"}) {
    EXPECT_THAT(header, testing::Contains(column));
  }
  auto column = [&header](const std::string& name) {
    return std::find(header.begin(), header.end(), name) - header.begin();
  };
  for (int row = 1; row <= 2; ++row) {
    const std::vector<std::string> cells = absl::StrSplit(lines[row], ',');
    ASSERT_EQ(cells.size(), header.size()) << lines[row];
  }
  const std::vector<std::string> first = absl::StrSplit(lines[1], ',');
  const std::vector<std::string> second = absl::StrSplit(lines[2], ',');
  EXPECT_EQ(first[column("concurrency")], "1");
  EXPECT_EQ(first[column("req_per_s")], "1000");
  EXPECT_EQ(first[column("rows_per_s")], "4000");
  EXPECT_EQ(first[column("p99_ms")], "1.5");
  EXPECT_EQ(first[column("server_queue_us")], "10");
  EXPECT_EQ(first[column("server_compute_infer_us")], "300");
  EXPECT_EQ(first[column("server_requests_per_execution")], "2");
  EXPECT_EQ(second[column("errors")], "7");
  EXPECT_EQ(second[column("errors_by_code")],
            "INVALID_ARGUMENT:5 UNAVAILABLE:2");
  EXPECT_EQ(second[column("server_stats")], "0");
  EXPECT_EQ(second[column("server_queue_us")], "");
}

TEST(LoadReportTest, JsonHasOneObjectPerStepWithEveryNumber) {
  const nlohmann::json json =
      nlohmann::json::parse(FormatJson(Options(), TwoSteps()));
  EXPECT_EQ(json["tool"], "reluserve-load");
  EXPECT_EQ(json["mode"], "closed");
  EXPECT_EQ(json["batch"], 4);
  ASSERT_TRUE(json["steps"].is_array());
  ASSERT_EQ(json["steps"].size(), 2u);
  const nlohmann::json& first = json["steps"][0];
  EXPECT_EQ(first["concurrency"], 1);
  EXPECT_EQ(first["requests"], 2000);
  EXPECT_DOUBLE_EQ(first["requests_per_second"].get<double>(), 1000);
  EXPECT_DOUBLE_EQ(first["rows_per_second"].get<double>(), 4000);
  for (const char* key : {"p50", "p90", "p95", "p99", "max", "mean", "min"}) {
    EXPECT_TRUE(first["latency_ms"][key].is_number()) << key;
  }
  EXPECT_DOUBLE_EQ(first["latency_ms"]["p99"].get<double>(), 1.5);
  EXPECT_EQ(first["server"]["available"], true);
  EXPECT_DOUBLE_EQ(first["server"]["queue_us"].get<double>(), 10);
  EXPECT_DOUBLE_EQ(first["server"]["compute_input_us"].get<double>(), 20);
  EXPECT_DOUBLE_EQ(first["server"]["compute_infer_us"].get<double>(), 300);
  EXPECT_DOUBLE_EQ(first["server"]["compute_output_us"].get<double>(), 5);
  EXPECT_EQ(first["server"]["execution_count"], 1000);
  EXPECT_DOUBLE_EQ(first["server"]["requests_per_execution"].get<double>(), 2);
  const nlohmann::json& second = json["steps"][1];
  EXPECT_EQ(second["errors"], 7);
  EXPECT_EQ(second["errors_by_code"]["INVALID_ARGUMENT"], 5);
  EXPECT_EQ(second["errors_by_code"]["UNAVAILABLE"], 2);
  EXPECT_EQ(second["server"]["available"], false);
  EXPECT_THAT(second["server"]["note"].get<std::string>(),
              HasSubstr("ModelStatistics"));
}

TEST(LoadReportTest, OpenLoopReportsRateDroppedAndLate) {
  LoadOptions options = Options();
  options.rates = {100};
  std::vector<StepResult> steps(1);
  steps[0].open_loop = true;
  steps[0].rate = 100;
  steps[0].dropped = 3;
  steps[0].late = 2;
  const nlohmann::json json = nlohmann::json::parse(FormatJson(options, steps));
  EXPECT_EQ(json["mode"], "open");
  EXPECT_EQ(json["arrivals"], "poisson");
  EXPECT_EQ(json["steps"][0]["rate"], 100);
  EXPECT_EQ(json["steps"][0]["dropped"], 3);
  EXPECT_EQ(json["steps"][0]["late"], 2);
  EXPECT_EQ(json["late_after_ms"], 1);
  const std::string table = FormatTable(options, steps);
  EXPECT_THAT(table, HasSubstr("dropped"));
  EXPECT_THAT(table, HasSubstr("poisson"));
  // The legend says what the open loop's columns mean.
  EXPECT_THAT(table, HasSubstr("late: requests sent more than 1 ms after their "
                               "scheduled time"));
  EXPECT_THAT(table, HasSubstr("dropped: arrivals not sent"));
}

TEST(LoadReportTest, HeldBackArrivalsAreReported) {
  LoadOptions options = Options();
  options.rates = {100};
  std::vector<StepResult> steps(1);
  steps[0].open_loop = true;
  steps[0].rate = 100;
  steps[0].dropped = 40;
  steps[0].held_back = 30;
  const nlohmann::json json = nlohmann::json::parse(FormatJson(options, steps));
  EXPECT_EQ(json["steps"][0]["held_back"], 30);
  EXPECT_THAT(FormatTable(options, steps),
              HasSubstr("rate 100/s: 30 of the dropped arrivals were held "
                        "back while backing off after UNAVAILABLE"));
  const std::vector<std::string> lines =
      absl::StrSplit(FormatCsv(options, steps), '\n');
  const std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  const std::vector<std::string> row = absl::StrSplit(lines[1], ',');
  ASSERT_EQ(row.size(), header.size());
  const auto held = std::find(header.begin(), header.end(), "held_back");
  ASSERT_NE(held, header.end());
  EXPECT_EQ(row[held - header.begin()], "30");
}

TEST(LoadReportTest, ServerGoneIsReportedEverywhere) {
  LoadOptions options = Options();  // two steps planned
  std::vector<StepResult> steps = TwoSteps();
  steps.resize(1);
  steps[0].server_gone = true;
  steps[0].server_gone_at_s = 2.345;
  steps[0].server_gone_error = "Socket closed";
  steps[0].server.available = false;
  steps[0].server.note = "not asked: the server went away";
  const std::string table = FormatTable(options, steps);
  EXPECT_THAT(table, HasSubstr("server went away at t=2.35 s (during conc 1"));
  EXPECT_THAT(table, HasSubstr("Socket closed"));
  EXPECT_THAT(table, HasSubstr("1 later step(s) skipped"));
  EXPECT_THAT(table, Not(HasSubstr("note: not asked")));
  EXPECT_THAT(FormatStepLine(steps[0], 2),
              HasSubstr("(stopped: server went away at t=2.35 s)"));
  const nlohmann::json json = nlohmann::json::parse(FormatJson(options, steps));
  EXPECT_EQ(json["steps"][0]["server_gone"], true);
  EXPECT_DOUBLE_EQ(json["steps"][0]["server_gone_at_s"].get<double>(), 2.345);
  EXPECT_EQ(json["steps"][0]["server_gone_error"], "Socket closed");
  const std::vector<std::string> lines =
      absl::StrSplit(FormatCsv(options, steps), '\n');
  const std::vector<std::string> header = absl::StrSplit(lines[0], ',');
  const std::vector<std::string> row = absl::StrSplit(lines[1], ',');
  ASSERT_EQ(row.size(), header.size());
  const auto at = std::find(header.begin(), header.end(), "server_gone_at_s");
  ASSERT_NE(at, header.end());
  EXPECT_EQ(row[at - header.begin()], "2.345");
  EXPECT_EQ(row[at - header.begin() - 1], "1");  // server_gone
}

TEST(LoadReportTest, TableListsStepsErrorsAndNotes) {
  const std::string table = FormatTable(Options(), TwoSteps());
  EXPECT_THAT(table, HasSubstr("127.0.0.1:1234"));
  EXPECT_THAT(table, HasSubstr("p99 ms"));
  EXPECT_THAT(table, HasSubstr("1000.0"));
  EXPECT_THAT(table, HasSubstr("300.0"));  // compute_infer us
  EXPECT_THAT(table, HasSubstr("INVALID_ARGUMENT 5"));
  EXPECT_THAT(table, HasSubstr("queue full"));
  EXPECT_THAT(table, HasSubstr("note: server does not implement"));
  EXPECT_THAT(table, Not(HasSubstr("dropped")));
}

TEST(LoadReportTest, GnuplotDataAndScript) {
  std::vector<StepResult> steps = TwoSteps();
  steps.push_back(StepResult());  // no successes: not plotted
  const std::string data = GnuplotData(steps);
  EXPECT_EQ(data,
            "# label req_per_s p50_ms p99_ms\n"
            "\"c1\" 1000 0.8 1.5\n"
            "\"c4\" 1500 2.5 4\n");
  const std::string script =
      GnuplotScript("/tmp/d.dat", "/tmp/it's.png", "a title");
  EXPECT_THAT(script, HasSubstr("set output '/tmp/it''s.png'"));
  EXPECT_THAT(script, HasSubstr("'/tmp/d.dat' using 2:3"));
  EXPECT_THAT(script, HasSubstr("title 'p50'"));
  EXPECT_THAT(script, HasSubstr("title 'p99'"));
  EXPECT_THAT(script, HasSubstr("set title 'a title'\n"));
  // Several lines: single-quoted pieces joined by a double-quoted newline.
  EXPECT_THAT(GnuplotScript("/tmp/d.dat", "/tmp/p.png", "one\nit's two"),
              HasSubstr("set title 'one' . \"\\n\" . 'it''s two'\n"));
}

TEST(LoadReportTest, PlotTitleLinesAreShort) {
  // The title used to be one line with every setting, clipped at both
  // sides of the image; now no line is longer than the 1000-pixel-wide
  // image holds at font size 10 (about 150 characters).
  LoadOptions options = Options();
  options.target = "127.0.0.1:54321";
  options.rates = {100, 200};
  options.stream = true;
  options.grad = true;
  options.channels = 16;
  const std::string title = PlotTitle(options);
  const std::vector<std::string> lines = absl::StrSplit(title, '\n');
  EXPECT_EQ(lines.size(), 3u) << title;
  for (const std::string& line : lines) {
    EXPECT_LE(line.size(), 80u) << line;
  }
  EXPECT_THAT(title, HasSubstr("target 127.0.0.1:54321"));
  EXPECT_THAT(title, HasSubstr("ModelStreamInfer, 16 channel(s)"));
  EXPECT_THAT(title, HasSubstr("open loop (poisson arrivals)"));
}

TEST(LoadReportTest, PlotWithoutGnuplotSaysWhatToInstall) {
  const char* old_path = getenv("PATH");
  const std::string saved = old_path == nullptr ? "" : old_path;
  setenv("PATH", "/nonexistent-reluserve-dir", 1);
  const absl::Status status = PlotLatencyVsThroughput(
      Options(), TwoSteps(), testing::TempDir() + "/never.png");
  setenv("PATH", saved.c_str(), 1);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("gnuplot-nox"));
}

TEST(LoadReportTest, ProgressAndStepLines) {
  LoadProgress progress;
  progress.step = 1;
  progress.steps = 3;
  progress.level = 16;
  progress.elapsed_s = 1.5;
  progress.answered = 1200;
  progress.requests_per_second = 800;
  progress.in_flight = 16;
  EXPECT_EQ(FormatProgressLine(progress),
            "step 2/3  conc 16  measuring 1.5 s  answered 1200  in flight 16  "
            "800.0 req/s");
  const std::string line = FormatStepLine(TwoSteps()[1], 2);
  EXPECT_THAT(line, HasSubstr("step 2/2  conc 4: 1500.0 req/s"));
  EXPECT_THAT(line, HasSubstr("errors 7"));
}

}  // namespace
}  // namespace reluserve
