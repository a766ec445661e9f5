// LoadGenerator end to end against an in-process fake GRPCInferenceService
// on 127.0.0.1: exact request counts, errors by code, streams in order, the
// open loop's schedule and drops, statistics deltas, separate connections,
// the backoff after UNAVAILABLE and a server that went away.

#include "client/load_generator.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "grpc_service.grpc.pb.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace reluserve {
namespace {

using ::testing::ElementsAre;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::Pair;

constexpr int64_t kK = 6;
constexpr int64_t kM = 3;

// Answers like ReluServe in shape only: every requested output (default y)
// as 4 bytes, the id echoed. Knobs make it fail, slow down or count.
class FakeService final : public inference::GRPCInferenceService::Service {
 public:
  std::atomic<bool> fail_all{false};
  // UNAVAILABLE for every request, or for the first this many.
  std::atomic<bool> unavailable_all{false};
  std::atomic<int> unavailable_first{0};
  std::atomic<int> delay_ms{0};
  std::atomic<bool> statistics{true};

  std::atomic<int> infer_calls{0};
  std::atomic<int> stream_messages{0};
  std::atomic<int> streams{0};
  std::atomic<int> statistics_calls{0};
  // Set when a stream's request ids did not increase.
  std::atomic<bool> stream_ids_out_of_order{false};

  std::set<std::string> peers() {
    std::lock_guard<std::mutex> lock(mutex_);
    return peers_;
  }
  inference::ModelInferRequest last_request() {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_request_;
  }

  grpc::Status ModelMetadata(
      grpc::ServerContext*, const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override {
    if (request->name() != "linear_relu") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such model");
    }
    response->set_name("linear_relu");
    auto add = [](auto* tensor, const char* name, int64_t columns) {
      tensor->set_name(name);
      tensor->set_datatype("FP32");
      tensor->add_shape(-1);
      tensor->add_shape(columns);
    };
    add(response->add_inputs(), "x", kK);
    add(response->add_inputs(), "grad_y", kM);
    add(response->add_outputs(), "y", kM);
    return grpc::Status::OK;
  }

  grpc::Status ModelInfer(grpc::ServerContext* context,
                          const inference::ModelInferRequest* request,
                          inference::ModelInferResponse* response) override {
    ++infer_calls;
    Remember(*context, *request);
    Delay();
    if (Unavailable()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down");
    }
    if (fail_all) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "input 'x': expected FP32, got INT8");
    }
    Answer(*request, *response);
    return grpc::Status::OK;
  }

  grpc::Status ModelStreamInfer(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<inference::ModelStreamInferResponse,
                               inference::ModelInferRequest>* stream) override {
    ++streams;
    inference::ModelInferRequest request;
    int64_t last_id = -1;
    while (stream->Read(&request)) {
      ++stream_messages;
      Remember(*context, request);
      const int64_t id = std::stoll(request.id());
      if (id <= last_id) stream_ids_out_of_order = true;
      last_id = id;
      Delay();
      inference::ModelStreamInferResponse reply;
      if (Unavailable()) {
        reply.set_error_message("UNAVAILABLE: shutting down");
      } else if (fail_all) {
        // As ReluServe does: the code name first; the stream stays open.
        reply.set_error_message("INVALID_ARGUMENT: input 'x': bad");
      } else {
        Answer(request, *reply.mutable_infer_response());
      }
      if (!stream->Write(reply)) break;
    }
    return grpc::Status::OK;
  }

  // Fixed costs per request: queue 1 us, input 2 us, infer 5 us, output 0.5
  // us; one execution per two requests (as if batched).
  grpc::Status ModelStatistics(
      grpc::ServerContext*, const inference::ModelStatisticsRequest* request,
      inference::ModelStatisticsResponse* response) override {
    ++statistics_calls;
    if (!statistics) {
      return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not here");
    }
    const uint64_t n = answered_.load();
    auto* stats = response->add_model_stats();
    stats->set_name(request->name());
    stats->set_version("1");
    stats->set_inference_count(rows_.load());
    stats->set_execution_count(n / 2);
    auto* infer = stats->mutable_inference_stats();
    auto set = [n](inference::StatisticDuration* d, uint64_t ns) {
      d->set_count(n);
      d->set_ns(n * ns);
    };
    set(infer->mutable_success(), 9000);
    set(infer->mutable_queue(), 1000);
    set(infer->mutable_compute_input(), 2000);
    set(infer->mutable_compute_infer(), 5000);
    set(infer->mutable_compute_output(), 500);
    return grpc::Status::OK;
  }

 private:
  bool Unavailable() {
    return unavailable_all || unavailable_first.fetch_sub(1) > 0;
  }

  void Remember(const grpc::ServerContext& context,
                const inference::ModelInferRequest& request) {
    std::lock_guard<std::mutex> lock(mutex_);
    peers_.insert(context.peer());
    last_request_ = request;
  }

  void Delay() {
    if (delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    }
  }

  void Answer(const inference::ModelInferRequest& request,
              inference::ModelInferResponse& response) {
    std::vector<std::string> names;
    for (const auto& output : request.outputs()) names.push_back(output.name());
    if (names.empty()) names.push_back("y");
    response.set_model_name(request.model_name());
    response.set_id(request.id());
    for (const std::string& name : names) {
      auto* output = response.add_outputs();
      output->set_name(name);
      output->set_datatype("FP32");
      output->add_shape(1);
      response.add_raw_output_contents(std::string(4, '\0'));
    }
    ++answered_;
    rows_ += request.inputs(0).shape(0);
  }

  std::atomic<uint64_t> answered_{0};
  std::atomic<uint64_t> rows_{0};
  std::mutex mutex_;
  std::set<std::string> peers_;
  inference::ModelInferRequest last_request_;
};

class LoadGeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::seconds(2));
  }

  LoadOptions Options() const {
    LoadOptions options;
    options.target = "127.0.0.1:" + std::to_string(port_);
    options.warmup_s = 0;
    options.timeout = std::chrono::seconds(5);
    options.global_timeout_s = 60;
    return options;
  }

  // Runs and expects success.
  std::vector<StepResult> Run(const LoadOptions& options) {
    absl::StatusOr<std::vector<StepResult>> steps =
        LoadGenerator(options).Run();
    EXPECT_TRUE(steps.ok()) << steps.status();
    return steps.ok() ? *steps : std::vector<StepResult>();
  }

  FakeService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(LoadGeneratorTest, ClosedLoopRecordsExactlyTheRequestsAskedFor) {
  LoadOptions options = Options();
  options.concurrency = {4};
  options.requests = 50;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].concurrency, 4);
  EXPECT_EQ(steps[0].requests, 50);
  EXPECT_EQ(steps[0].successes, 50);
  EXPECT_EQ(steps[0].errors, 0);
  EXPECT_EQ(steps[0].latency_ms.count, 50);
  EXPECT_EQ(service_.infer_calls, 50);  // no warm-up: nothing else was sent
  EXPECT_GT(steps[0].requests_per_second, 0);
  EXPECT_DOUBLE_EQ(steps[0].rows_per_second, steps[0].requests_per_second);
  EXPECT_GT(steps[0].latency_ms.p50, 0);
  EXPECT_LE(steps[0].latency_ms.p50, steps[0].latency_ms.p99);
  EXPECT_LE(steps[0].latency_ms.p99, steps[0].latency_ms.max);
}

TEST_F(LoadGeneratorTest, WarmupIsNotCounted) {
  LoadOptions options = Options();
  options.concurrency = {2};
  options.requests = 20;
  options.warmup_s = 0.2;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].requests, 20);
  EXPECT_GT(service_.infer_calls, 20);
}

TEST_F(LoadGeneratorTest, SweepRunsOneStepPerConcurrency) {
  LoadOptions options = Options();
  options.concurrency = {1, 3};
  options.duration_s = 0.2;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].concurrency, 1);
  EXPECT_EQ(steps[1].concurrency, 3);
  for (const StepResult& step : steps) {
    EXPECT_DOUBLE_EQ(step.seconds, 0.2);
    EXPECT_GT(step.successes, 0);
    EXPECT_EQ(step.errors, 0);
  }
}

TEST_F(LoadGeneratorTest, ErrorsAreCountedByCode) {
  service_.fail_all = true;
  LoadOptions options = Options();
  options.concurrency = {4};
  options.requests = 50;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].requests, 50);
  EXPECT_EQ(steps[0].successes, 0);
  EXPECT_EQ(steps[0].errors, 50);
  EXPECT_THAT(steps[0].errors_by_code,
              ElementsAre(Pair("INVALID_ARGUMENT", 50)));
  EXPECT_THAT(steps[0].first_error.at("INVALID_ARGUMENT"), HasSubstr("INT8"));
  EXPECT_EQ(steps[0].latency_ms.count, 0);
}

TEST_F(LoadGeneratorTest, StreamingMatchesResponsesInOrder) {
  LoadOptions options = Options();
  options.stream = true;
  options.concurrency = {4};
  options.requests = 50;
  options.channels = 2;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].requests, 50);
  EXPECT_EQ(steps[0].successes, 50);  // an out-of-order id would be an error
  EXPECT_EQ(steps[0].errors, 0) << testing::PrintToString(steps[0].first_error);
  EXPECT_EQ(service_.streams, 4);  // one per in-flight slot
  EXPECT_EQ(service_.stream_messages, 50);
  EXPECT_EQ(service_.infer_calls, 0);
  EXPECT_FALSE(service_.stream_ids_out_of_order);
}

TEST_F(LoadGeneratorTest, StreamingErrorsAreCountedAndTheStreamStaysOpen) {
  service_.fail_all = true;
  LoadOptions options = Options();
  options.stream = true;
  options.concurrency = {2};
  options.requests = 30;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].requests, 30);
  EXPECT_THAT(steps[0].errors_by_code,
              ElementsAre(Pair("INVALID_ARGUMENT", 30)));
  EXPECT_EQ(service_.streams, 2);
}

TEST_F(LoadGeneratorTest, TimeoutsCountAsDeadlineExceeded) {
  service_.delay_ms = 60;
  for (bool stream : {false, true}) {
    LoadOptions options = Options();
    options.stream = stream;
    options.requests = 4;
    options.timeout = std::chrono::milliseconds(15);
    const std::vector<StepResult> steps = Run(options);
    ASSERT_EQ(steps.size(), 1u);
    EXPECT_EQ(steps[0].requests, 4) << "stream " << stream;
    EXPECT_THAT(steps[0].errors_by_code,
                ElementsAre(Pair("DEADLINE_EXCEEDED", 4)))
        << "stream " << stream;
  }
}

TEST_F(LoadGeneratorTest, OpenLoopStreamWithManyRequestsInFlight) {
  // 2 ms per message on one stream at 2000/s: requests queue up on the
  // stream and must still be matched in order.
  service_.delay_ms = 2;
  LoadOptions options = Options();
  options.stream = true;
  options.rates = {2000};
  options.arrivals = Arrivals::kConstant;
  options.requests = 60;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_TRUE(steps[0].open_loop);
  EXPECT_EQ(steps[0].requests, 60);
  EXPECT_EQ(steps[0].successes, 60)
      << testing::PrintToString(steps[0].first_error);
  EXPECT_EQ(steps[0].dropped, 0);
  EXPECT_EQ(service_.streams, 1);
  EXPECT_FALSE(service_.stream_ids_out_of_order);
  // Answers took longer than the schedule, so many were in flight at once.
  EXPECT_GT(steps[0].latency_ms.max, 20.0);
}

TEST_F(LoadGeneratorTest, OpenLoopNeverRunsAheadOfTheSchedule) {
  LoadOptions options = Options();
  options.rates = {400};
  options.arrivals = Arrivals::kConstant;
  options.requests = 100;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_DOUBLE_EQ(steps[0].rate, 400);
  EXPECT_EQ(steps[0].requests, 100);
  EXPECT_EQ(steps[0].successes, 100);
  EXPECT_EQ(steps[0].dropped, 0);
  // The 100th arrival is due 99/400 s after the first; a loaded machine may
  // send late, never early.
  EXPECT_GE(steps[0].seconds, 99 / 400.0);
  EXPECT_LE(steps[0].requests_per_second, 100 / (99 / 400.0));
}

TEST_F(LoadGeneratorTest, OpenLoopForADuration) {
  LoadOptions options = Options();
  options.rates = {400};
  options.arrivals = Arrivals::kConstant;
  options.duration_s = 0.5;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_DOUBLE_EQ(steps[0].seconds, 0.5);
  // At most the 200 arrivals of the window (timing on a busy machine may
  // leave the last ones unanswered inside it).
  EXPECT_GT(steps[0].requests, 0);
  EXPECT_LE(steps[0].requests, 201);
  EXPECT_EQ(steps[0].errors, 0);
  EXPECT_EQ(steps[0].dropped, 0);
}

TEST_F(LoadGeneratorTest, OpenLoopDropsAboveMaxInFlight) {
  service_.delay_ms = 100;
  LoadOptions options = Options();
  options.rates = {200};
  options.arrivals = Arrivals::kConstant;
  options.requests = 20;
  options.max_in_flight = 2;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_GT(steps[0].dropped, 10);
  EXPECT_EQ(steps[0].requests + steps[0].dropped, 20);
  EXPECT_EQ(steps[0].successes, steps[0].requests);
  EXPECT_EQ(service_.infer_calls, steps[0].requests);
}

TEST_F(LoadGeneratorTest, ServerStatisticsAreDifferenced) {
  LoadOptions options = Options();
  options.concurrency = {2};
  options.requests = 20;
  options.batch = 3;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  const ServerSplit& server = steps[0].server;
  ASSERT_TRUE(server.available) << server.note;
  EXPECT_EQ(server.delta.success.count, 20u);
  EXPECT_DOUBLE_EQ(server.delta.queue.MeanUs(), 1.0);
  EXPECT_DOUBLE_EQ(server.delta.compute_input.MeanUs(), 2.0);
  EXPECT_DOUBLE_EQ(server.delta.compute_infer.MeanUs(), 5.0);
  EXPECT_DOUBLE_EQ(server.delta.compute_output.MeanUs(), 0.5);
  EXPECT_EQ(server.delta.execution_count, 10u);
  EXPECT_DOUBLE_EQ(server.delta.RequestsPerExecution(), 2.0);
  EXPECT_EQ(server.delta.inference_count, 60u);
}

TEST_F(LoadGeneratorTest, UnimplementedStatisticsAreNoticedOnce) {
  service_.statistics = false;
  LoadOptions options = Options();
  options.concurrency = {1, 2};
  options.requests = 5;
  std::vector<std::string> notices;
  int steps_done = 0;
  absl::StatusOr<std::vector<StepResult>> steps =
      LoadGenerator(options).Run([&](const LoadProgress& progress) {
        if (progress.kind == LoadProgress::Kind::kNotice) {
          notices.push_back(progress.message);
        }
        if (progress.kind == LoadProgress::Kind::kStepDone) {
          ASSERT_NE(progress.result, nullptr);
          EXPECT_EQ(progress.result->index, steps_done);
          ++steps_done;
        }
      });
  ASSERT_TRUE(steps.ok()) << steps.status();
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ(steps_done, 2);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_THAT(notices[0], HasSubstr("UNIMPLEMENTED"));
  EXPECT_EQ(service_.statistics_calls, 1);  // not asked again
  for (const StepResult& step : *steps) {
    EXPECT_FALSE(step.server.available);
    EXPECT_THAT(step.server.note, HasSubstr("ModelStatistics"));
    EXPECT_EQ(step.successes, 5);
  }
}

TEST_F(LoadGeneratorTest, ChannelsAreSeparateConnections) {
  LoadOptions options = Options();
  options.channels = 3;
  options.concurrency = {3};
  options.requests = 30;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].successes, 30);
  // Each connection has its own client port.
  EXPECT_EQ(service_.peers().size(), 3u)
      << testing::PrintToString(service_.peers());
}

TEST_F(LoadGeneratorTest, GradBf16RequestsCarryEverything) {
  LoadOptions options = Options();
  options.grad = true;
  options.dtype = WireType::kBf16;
  options.batch = 5;
  options.requests = 3;
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].successes, 3);
  const inference::ModelInferRequest request = service_.last_request();
  ASSERT_EQ(request.inputs_size(), 2);
  EXPECT_EQ(request.inputs(0).datatype(), "BF16");
  EXPECT_THAT(request.inputs(0).shape(), ElementsAre(5, kK));
  EXPECT_EQ(request.raw_input_contents(0).size(), 5u * kK * 2);
  EXPECT_EQ(request.inputs(1).name(), "grad_y");
  EXPECT_EQ(request.raw_input_contents(1).size(), 5u * kM * 2);
  EXPECT_EQ(request.outputs_size(), 4);
}

TEST_F(LoadGeneratorTest, GlobalTimeoutCutsTheStepShort) {
  LoadOptions options = Options();
  options.concurrency = {2, 4};
  options.duration_s = 30;
  options.global_timeout_s = 0.5;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<StepResult> steps = Run(options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  ASSERT_EQ(steps.size(), 1u);  // the second step never ran
  EXPECT_TRUE(steps[0].timed_out);
  EXPECT_GT(steps[0].successes, 0);
  // The window ends at the global deadline, however late the driver wakes.
  EXPECT_GT(steps[0].seconds, 0);
  EXPECT_LE(steps[0].seconds, 0.5);
}

TEST_F(LoadGeneratorTest, ProgressTicksWhileRunning) {
  LoadOptions options = Options();
  options.concurrency = {1};
  options.duration_s = 0.35;
  options.warmup_s = 0.1;
  options.progress_interval_s = 0.05;
  int ticks = 0, warmup_ticks = 0;
  absl::StatusOr<std::vector<StepResult>> steps =
      LoadGenerator(options).Run([&](const LoadProgress& progress) {
        if (progress.kind != LoadProgress::Kind::kTick) return;
        ++ticks;
        if (progress.warming_up) ++warmup_ticks;
        EXPECT_EQ(progress.steps, 1);
      });
  ASSERT_TRUE(steps.ok()) << steps.status();
  EXPECT_GE(ticks, 4);
  EXPECT_GE(warmup_ticks, 1);
}

TEST_F(LoadGeneratorTest, UnknownModelFailsBeforeMeasuring) {
  LoadOptions options = Options();
  options.model_name = "nope";
  absl::StatusOr<std::vector<StepResult>> steps = LoadGenerator(options).Run();
  EXPECT_EQ(steps.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(steps.status().message(), HasSubstr("ModelMetadata"));
}

TEST_F(LoadGeneratorTest, ClosedLoopBacksOffAfterUnavailable) {
  // Without the backoff, two slots answered at once would send thousands of
  // requests in a second.
  service_.unavailable_all = true;
  LoadOptions options = Options();
  options.concurrency = {2};
  options.duration_s = 1.0;
  options.server_gone_after_s = 3600;  // only the backoff here
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_FALSE(steps[0].server_gone);
  EXPECT_THAT(steps[0].errors_by_code, ElementsAre(Pair("UNAVAILABLE", Gt(0))));
  // Per slot: 50, 80, 128, 205, 328 ms... (+-20%): at most 8 in 1 s.
  EXPECT_LE(service_.infer_calls, 2 * 8 + 2);
}

TEST_F(LoadGeneratorTest, RetriesAfterUnavailableAreCountedRequests) {
  // The slot backs off, then carries on: the 20 requests are 5 UNAVAILABLE
  // answers and 15 successes, and the step does not end while a retry waits.
  for (bool stream : {false, true}) {
    service_.unavailable_first = 5;
    LoadOptions options = Options();
    options.stream = stream;
    options.concurrency = {1};
    options.requests = 20;
    const auto start = std::chrono::steady_clock::now();
    const std::vector<StepResult> steps = Run(options);
    ASSERT_EQ(steps.size(), 1u);
    EXPECT_FALSE(steps[0].server_gone) << "stream " << stream;
    EXPECT_EQ(steps[0].requests, 20) << "stream " << stream;
    EXPECT_EQ(steps[0].successes, 15) << "stream " << stream;
    EXPECT_THAT(steps[0].errors_by_code, ElementsAre(Pair("UNAVAILABLE", 5)))
        << "stream " << stream;
    // Five backoffs, 50 to 262 ms (+-20%): about 0.65 s in all.
    EXPECT_GE(std::chrono::steady_clock::now() - start,
              std::chrono::milliseconds(400))
        << "stream " << stream;
  }
}

TEST_F(LoadGeneratorTest, ServerAnsweringOnlyUnavailableHasGoneAway) {
  service_.unavailable_all = true;
  for (bool stream : {false, true}) {
    LoadOptions options = Options();
    options.stream = stream;
    options.concurrency = {4, 8};
    options.duration_s = 30;
    options.server_gone_after_s = 0.5;
    const auto start = std::chrono::steady_clock::now();
    const std::vector<StepResult> steps = Run(options);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3))
        << "stream " << stream;
    ASSERT_EQ(steps.size(), 1u) << "stream " << stream;  // no second step
    EXPECT_TRUE(steps[0].server_gone) << "stream " << stream;
    EXPECT_GE(steps[0].server_gone_at_s, 0);
    EXPECT_LT(steps[0].server_gone_at_s, 0.5);
    EXPECT_THAT(steps[0].server_gone_error, HasSubstr("shutting down"));
    EXPECT_EQ(steps[0].successes, 0);
    EXPECT_GT(steps[0].errors, 0);
    // 4 slots, each backing off: a handful each before 0.5 s ran out.
    EXPECT_LE(steps[0].errors, 4 * 6) << "stream " << stream;
    EXPECT_LE(steps[0].seconds, 1.5) << "stream " << stream;
  }
}

TEST_F(LoadGeneratorTest, OpenLoopHoldsArrivalsBackAfterUnavailable) {
  service_.unavailable_all = true;
  LoadOptions options = Options();
  options.rates = {1000};
  options.arrivals = Arrivals::kConstant;
  options.duration_s = 1.0;
  options.server_gone_after_s = 3600;  // only the backoff here
  const std::vector<StepResult> steps = Run(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_FALSE(steps[0].server_gone);
  // The gate: 50, 80, 128, 205, 328 ms... (+-20%) between requests sent,
  // about 7 openings in 1 s, each letting through the arrivals that come
  // before the UNAVAILABLE answer (1000 without the gate).
  EXPECT_LE(service_.infer_calls, 25);
  EXPECT_GT(steps[0].held_back, 900);
  EXPECT_EQ(steps[0].dropped, steps[0].held_back);
  EXPECT_EQ(steps[0].requests, steps[0].errors);
}

TEST_F(LoadGeneratorTest, OpenLoopServerGoneStopsTheSweep) {
  service_.unavailable_all = true;
  LoadOptions options = Options();
  options.rates = {500, 1000};
  options.duration_s = 30;
  options.server_gone_after_s = 0.5;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<StepResult> steps = Run(options);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_TRUE(steps[0].server_gone);
  // About 5 gate openings in 0.5 s, a few Poisson arrivals each (250
  // without the gate).
  EXPECT_LE(service_.infer_calls, 30);
}

TEST(LoadGeneratorStandaloneTest, UnreachableTargetIsUnavailable) {
  // A port held bound but not listening refuses connections, and no other
  // test can take it meanwhile.
  const int held = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(held, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(held, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
            0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(getsockname(held, reinterpret_cast<sockaddr*>(&address), &length),
            0);
  LoadOptions options;
  options.target = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  options.timeout = std::chrono::milliseconds(5000);  // not what counts
  options.connect_timeout = std::chrono::milliseconds(300);
  options.channels = 3;  // one deadline for all, not one each
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<StepResult>> steps = LoadGenerator(options).Run();
  const auto waited = std::chrono::steady_clock::now() - start;
  close(held);
  EXPECT_EQ(steps.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(steps.status().message(),
              HasSubstr("cannot reach " + options.target +
                        ": no connection within 300 ms (pass "
                        "--connect-timeout-ms to wait longer)"));
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::milliseconds(2000));
}

TEST(LoadOptionsTest, Validation) {
  LoadOptions options;
  EXPECT_TRUE(ValidateLoadOptions(options).ok());
  options.concurrency.clear();
  EXPECT_EQ(ValidateLoadOptions(options).code(),
            absl::StatusCode::kInvalidArgument);
  options.rates = {0};
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.rates = {10};
  EXPECT_TRUE(ValidateLoadOptions(options).ok());
  options.batch = 0;
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.batch = 1;
  options.channels = 0;
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.channels = 1;
  options.connect_timeout = std::chrono::milliseconds(0);
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.connect_timeout = std::chrono::milliseconds(1000);
  options.backoff.multiplier = 0.5;  // would shrink
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.backoff.multiplier = 2;
  options.backoff.max = std::chrono::milliseconds(10);  // below initial
  EXPECT_FALSE(ValidateLoadOptions(options).ok());
  options.backoff.max = std::chrono::milliseconds(2000);
  EXPECT_TRUE(ValidateLoadOptions(options).ok());
}

}  // namespace
}  // namespace reluserve
