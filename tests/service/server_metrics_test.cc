// GET /metrics of a running server: a known workload on weights whose bias
// makes a known set of units dead gives exact counter and gauge values.
#include <gtest/gtest.h>
#include <sys/times.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "httplib.h"
#include "tests/support/service_testing.h"

namespace reluserve::testing {
namespace {

constexpr int kDeadUnits = 5;  // of kOut

// W = 0 and bias -1 for the first kDeadUnits units, +1 for the others: y =
// max(0, b) whatever x is, so exactly those units are dead.
LinearWeights HalfDeadWeights() {
  LinearWeights weights = MakeDefaultWeights(kIn, kOut, 1);
  std::fill(weights.weight.begin(), weights.weight.end(), 0.0f);
  for (int64_t unit = 0; unit < kOut; ++unit) {
    weights.bias[unit] = unit < kDeadUnits ? -1.0f : 1.0f;
  }
  return weights;
}

std::string Scrape(int port) {
  httplib::Client http("127.0.0.1", port);
  httplib::Result result = http.Get("/metrics");
  if (!result) return "no answer: " + httplib::to_string(result.error());
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->get_header_value("Content-Type"),
            "text/plain; version=0.0.4; charset=utf-8");
  return result->body;
}

// The value of the sample written exactly as `series` (name and labels).
double Value(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > series.size() &&
        line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  ADD_FAILURE() << "no sample " << series << " in\n" << text;
  return -1;
}

std::string Model(const std::string& extra = "") {
  return "{model=\"linear_relu\",version=\"1\"" + extra + "}";
}

class ServerMetricsTest : public ServiceTest {
 protected:
  void SetUp() override {
    access_log_ =
        ::testing::TempDir() + "/access-" +
        ::testing::UnitTest::GetInstance()->current_test_info()->name() +
        ".log";
    std::remove(access_log_.c_str());
    StartServer(HalfDeadWeights(), [this](Server::Options& options) {
      options.metrics_port = 0;
      options.access_log = access_log_;
    });
  }

  // 3 forward requests of 4 rows, 2 backward of 2 rows, one invalid (x of
  // the wrong width) and one for a model not served.
  void RunKnownWorkload() {
    inference::ModelInferResponse response;
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(Infer(Request(4, false), &response).ok());
    }
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(Infer(Request(2, true), &response).ok());
    }
    inference::ModelInferRequest invalid;
    invalid.set_model_name("linear_relu");
    AddInput(invalid, "x", {1, kIn + 1}, std::vector<float>(kIn + 1));
    EXPECT_EQ(Infer(invalid, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    inference::ModelInferRequest unknown = Request(1, false);
    unknown.set_model_name("resnet");
    EXPECT_EQ(Infer(unknown, &response).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }

  std::string access_log_;
};

TEST_P(ServerMetricsTest, TritonCountersMatchTheWorkload) {
  RunKnownWorkload();
  const std::string text = Scrape(server_->metrics_port());
  EXPECT_EQ(Value(text, "nv_inference_request_success" + Model()), 5);
  EXPECT_EQ(Value(text, "nv_inference_request_failure" +
                            Model(",reason=\"REJECTED\"")),
            1);
  for (const char* reason : {"CANCELED", "BACKEND", "OTHER"}) {
    EXPECT_EQ(Value(text, "nv_inference_request_failure" +
                              Model(std::string(",reason=\"") + reason + "\"")),
              0);
  }
  EXPECT_EQ(Value(text, "nv_inference_count" + Model()), 3 * 4 + 2 * 2);
  EXPECT_EQ(Value(text, "nv_inference_exec_count" + Model()), 5);
  EXPECT_EQ(Value(text, "nv_inference_pending_request_count" + Model()), 0);
  const double total =
      Value(text, "nv_inference_request_duration_us" + Model());
  const double infer =
      Value(text, "nv_inference_compute_infer_duration_us" + Model());
  EXPECT_GT(infer, 0);
  EXPECT_GE(total, infer);
  EXPECT_GE(Value(text, "nv_inference_queue_duration_us" + Model()), 0);
}

TEST_P(ServerMetricsTest, HistogramsCountRequestsByPassAndRowsPerExecution) {
  RunKnownWorkload();
  const std::string text = Scrape(server_->metrics_port());
  EXPECT_EQ(Value(text, "reluserve_request_duration_seconds_count" +
                            Model(",pass=\"forward\"")),
            3);
  EXPECT_EQ(Value(text, "reluserve_request_duration_seconds_count" +
                            Model(",pass=\"backward\"")),
            2);
  EXPECT_EQ(Value(text, "reluserve_request_duration_seconds_bucket" +
                            Model(",pass=\"backward\",le=\"+Inf\"")),
            2);
  EXPECT_GT(Value(text, "reluserve_request_duration_seconds_sum" +
                            Model(",pass=\"forward\"")),
            0);
  EXPECT_EQ(Value(text, "reluserve_batch_rows_count" + Model()), 5);
  EXPECT_EQ(Value(text, "reluserve_batch_rows_sum" + Model()), 16);
  EXPECT_EQ(Value(text, "reluserve_batch_rows_bucket" + Model(",le=\"1\"")), 0);
  EXPECT_EQ(Value(text, "reluserve_batch_rows_bucket" + Model(",le=\"2\"")), 2);
  EXPECT_EQ(Value(text, "reluserve_batch_rows_bucket" + Model(",le=\"4\"")), 5);
}

TEST_P(ServerMetricsTest, DeadReluGaugesCountTheUnitsTheBiasKills) {
  const std::string before = Scrape(server_->metrics_port());
  EXPECT_EQ(Value(before, "reluserve_relu_units" + Model(",layer=\"0\"")),
            kOut);
  EXPECT_EQ(Value(before, "reluserve_relu_dead_units" + Model(",layer=\"0\"")),
            0);
  EXPECT_EQ(Value(before, "reluserve_relu_window_rows" + Model(",layer=\"0\"")),
            0);
  RunKnownWorkload();
  const std::string text = Scrape(server_->metrics_port());
  EXPECT_EQ(Value(text, "reluserve_relu_dead_units" + Model(",layer=\"0\"")),
            kDeadUnits);
  // Every successful request's rows, forward and backward.
  EXPECT_EQ(Value(text, "reluserve_relu_window_rows" + Model(",layer=\"0\"")),
            16);
}

TEST_P(ServerMetricsTest, CountsHandledCallsByMethodAndCode) {
  RunKnownWorkload();
  const std::string text = Scrape(server_->metrics_port());
  const std::string infer =
      "grpc_server_handled_total{grpc_service=\"inference."
      "GRPCInferenceService\",grpc_method=\"ModelInfer\",grpc_code=";
  EXPECT_EQ(Value(text, infer + "\"OK\"}"), 5);
  EXPECT_EQ(Value(text, infer + "\"InvalidArgument\"}"), 1);
  EXPECT_EQ(Value(text, infer + "\"NotFound\"}"), 1);
}

// Spends CPU until the kernel has charged this process `ticks` clock ticks
// (what /proc/self/stat counts; a fast start-up may have used less than
// one, and process_cpu_seconds_total would read 0). Bounded by 5 s.
void SpendClockTicks(clock_t ticks) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(5);
  volatile double sink = 0;
  tms used{};
  while (times(&used) != static_cast<clock_t>(-1) &&
         used.tms_utime + used.tms_stime < ticks &&
         std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 100000; ++i) sink = sink + i * 0.5;
  }
}

TEST_P(ServerMetricsTest, ReportsTheProcess) {
  SpendClockTicks(2);
  const std::string text = Scrape(server_->metrics_port());
  EXPECT_GT(Value(text, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(Value(text, "process_cpu_seconds_total"), 0);
  const double now = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  const double started = Value(text, "process_start_time_seconds");
  EXPECT_LE(started, now + 1);
  EXPECT_GT(started, now - 3600);
}

TEST_P(ServerMetricsTest, AccessLogHasOneLinePerInferenceRequest) {
  RunKnownWorkload();
  server_.reset();  // flushes the log
  std::ifstream file(access_log_);
  std::vector<std::string> lines;
  for (std::string line; std::getline(file, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 7u);
  const std::regex format(
      R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 ModelInfer )"
      R"(model=(\S+) version= id= rows=(\d+) code=(\S+) us=\d+ )"
      R"(peer=ipv[46]:\S+)");
  std::vector<std::string> summary;
  for (const std::string& line : lines) {
    std::smatch match;
    ASSERT_TRUE(std::regex_match(line, match, format)) << line;
    summary.push_back(match[1].str() + " " + match[2].str() + " " +
                      match[3].str());
  }
  EXPECT_EQ(summary,
            (std::vector<std::string>{
                "linear_relu 4 OK", "linear_relu 4 OK", "linear_relu 4 OK",
                "linear_relu 2 OK", "linear_relu 2 OK",
                "linear_relu 0 INVALID_ARGUMENT", "resnet 0 NOT_FOUND"}));
}

INSTANTIATE_TEST_SUITE_P(AllSchedulings, ServerMetricsTest, Schedulings(),
                         SchedulingName);

class ServerMetricsOptionsTest : public ServiceTest {};

TEST_P(ServerMetricsOptionsTest, MonitorOffLeavesOutTheDeadReluGauges) {
  StartServer(HalfDeadWeights(), [](Server::Options& options) {
    options.metrics_port = 0;
    options.dead_relu.window_rows = 0;
  });
  inference::ModelInferResponse response;
  ASSERT_TRUE(Infer(Request(3, false), &response).ok());
  const std::string text = Scrape(server_->metrics_port());
  EXPECT_EQ(text.find("reluserve_relu_"), std::string::npos);
  EXPECT_EQ(Value(text, "nv_inference_count" + Model()), 3);
}

TEST_P(ServerMetricsOptionsTest, EndpointOffBindsNothing) {
  StartServer(HalfDeadWeights(),
              [](Server::Options& options) { options.metrics_port = -1; });
  EXPECT_EQ(server_->metrics_port(), 0);
}

TEST_P(ServerMetricsOptionsTest, BusyMetricsPortFailsTheStartWithAMessage) {
  StartServer(HalfDeadWeights(),
              [](Server::Options& options) { options.metrics_port = 0; });
  Server::Options options;
  options.port = 0;
  options.metrics_port = server_->metrics_port();
  absl::StatusOr<std::unique_ptr<Server>> second =
      Server::Start(options, SingleLayerModel(weights_));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(
      second.status().message().find("cannot listen for metrics on 127.0.0.1:" +
                                     std::to_string(server_->metrics_port())),
      std::string::npos)
      << second.status();
}

// Two models side by side, one a stack: every series carries its own model
// and version, and each ReLU layer of the stack its own `layer` label (the
// module index of the Linear it follows).
TEST(DeepModelMetricsTest, EveryModelAndReluLayerHasItsOwnSeries) {
  // Layer 0 (module 0): W = 0, bias -1 for 2 of 4 units: those are dead.
  // Layer 1 (module 2): W = 0, bias -1 for 1 of 3 units. Layer 2 (module
  // 4): no ReLU, so no series.
  std::vector<SequentialLayerSpec> layers(3);
  const int64_t widths[] = {6, 4, 3, 2};
  const int dead[] = {2, 1, 0};
  for (size_t i = 0; i < layers.size(); ++i) {
    LinearWeights& w = layers[i].weights;
    w = MakeDefaultWeights(widths[i], widths[i + 1], 1 + i);
    std::fill(w.weight.begin(), w.weight.end(), 0.0f);
    for (int64_t unit = 0; unit < widths[i + 1]; ++unit) {
      w.bias[unit] = unit < dead[i] ? -1.0f : 1.0f;
    }
    layers[i].relu = i + 1 < layers.size();
    layers[i].module = std::to_string(2 * i);
    layers[i].weight_name = layers[i].module + ".weight";
    layers[i].bias_name = layers[i].module + ".bias";
  }
  absl::StatusOr<std::unique_ptr<SequentialModel>> deep =
      SequentialModel::Create(layers);
  ASSERT_TRUE(deep.ok());
  std::vector<ServedModelSpec> models(2);
  models[0].config.name = "mlp";
  models[0].config.version = "3";
  models[0].model = std::move(*deep);
  models[1].model = SingleLayerModel(HalfDeadWeights());
  Server::Options options;
  options.port = 0;
  options.metrics_port = 0;
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Start(options, std::move(models));
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      (*server)->address(), grpc::InsecureChannelCredentials()));

  for (const auto& [name, rows] :
       {std::pair<std::string, int64_t>{"mlp", 5}, {"linear_relu", 2}}) {
    inference::ModelInferRequest request;
    request.set_model_name(name);
    const int64_t in = name == "mlp" ? widths[0] : kIn;
    AddInput(request, "x", {rows, in}, RandomValues(rows * in, 3));
    inference::ModelInferResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->ModelInfer(&context, request, &response).ok()) << name;
  }
  const std::string text = Scrape((*server)->metrics_port());
  const std::string mlp = "{model=\"mlp\",version=\"3\"";
  EXPECT_EQ(Value(text, "nv_inference_count" + mlp + "}"), 5);
  EXPECT_EQ(Value(text, "nv_inference_count" + Model()), 2);
  EXPECT_EQ(Value(text, "reluserve_relu_units" + mlp + ",layer=\"0\"}"), 4);
  EXPECT_EQ(Value(text, "reluserve_relu_dead_units" + mlp + ",layer=\"0\"}"),
            2);
  EXPECT_EQ(Value(text, "reluserve_relu_units" + mlp + ",layer=\"2\"}"), 3);
  EXPECT_EQ(Value(text, "reluserve_relu_dead_units" + mlp + ",layer=\"2\"}"),
            1);
  EXPECT_EQ(Value(text, "reluserve_relu_window_rows" + mlp + ",layer=\"2\"}"),
            5);
  EXPECT_EQ(text.find(mlp + ",layer=\"4\"}"), std::string::npos)
      << "the last Linear has no ReLU";
  EXPECT_EQ(Value(text, "reluserve_relu_dead_units" + Model(",layer=\"0\"")),
            kDeadUnits);
}

INSTANTIATE_TEST_SUITE_P(Inline, ServerMetricsOptionsTest,
                         ::testing::Values(Inline()), SchedulingName);

}  // namespace
}  // namespace reluserve::testing
