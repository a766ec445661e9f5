#include "server/runtime/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>

#include "common/bfloat16.h"
#include "server/core/sequential_model.h"
#include "server/core/weights.h"
#include "tests/support/naive_reference.h"
#include "tests/support/tensor_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::RandomValues;
using ::reluserve::testing::RelativeError;
using namespace std::chrono_literals;

constexpr int64_t kIn = 37, kOut = 13;

// A job's inputs and outputs, owned by the test instead of a gRPC message.
struct TestRequest {
  std::vector<float> x, grad_y, y, grad_x, grad_weight, grad_bias;
  std::promise<absl::Status> outcome;
  RequestPhases phases;
};

// Blocks the thread that runs a job's `done` until released: pins a compute
// thread so that the queue state is known.
class Gate {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    entered_ = true;
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_; });
  }
  void WaitUntilEntered() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return entered_; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool entered_ = false, open_ = false;
};

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : weights_(MakeDefaultWeights(kIn, kOut, 3)) {
    weights_.bias = RandomValues(kOut, 4);
    SequentialLayerSpec layer;
    layer.weights = weights_;
    absl::StatusOr<std::unique_ptr<SequentialModel>> model =
        SequentialModel::Create({layer});
    if (!model.ok()) throw std::runtime_error(model.status().ToString());
    model_ = std::move(*model);
  }

  // Counts the model runs, as the service's statistics do.
  Scheduler::ExecutionRecorder Recorder() {
    return [this](int64_t, Nanoseconds, Nanoseconds, Nanoseconds) {
      executions_.fetch_add(1);
    };
  }

  std::unique_ptr<TestRequest> NewRequest(int64_t batch, bool backward,
                                          uint64_t seed) {
    auto request = std::make_unique<TestRequest>();
    request->x = RandomValues(batch * kIn, seed);
    request->y.assign(batch * kOut, -1.0f);
    if (backward) {
      request->grad_y = RandomValues(batch * kOut, seed + 1000);
      request->grad_x.assign(batch * kIn, 0.0f);
      request->grad_weight.assign(kOut * kIn, 0.0f);
      request->grad_bias.assign(kOut, 0.0f);
    }
    return request;
  }

  std::unique_ptr<InferJob> JobFor(TestRequest& request, Gate* gate = nullptr) {
    // The signature: x, grad_y; y, grad_x, grad_weight, grad_bias.
    auto job = std::make_unique<InferJob>();
    const int64_t batch = static_cast<int64_t>(request.x.size()) / kIn;
    job->validated.batch = batch;
    job->validated.inputs = {request.x.data(), nullptr};
    job->validated.input_shapes = {{batch, kIn}, {}};
    job->validated.outputs = {
        {0, Precision::kFloat32, {batch, kOut}, batch * kOut}};
    job->outputs = {request.y.data(), nullptr, nullptr, nullptr};
    if (!request.grad_y.empty()) {
      job->validated.inputs[1] = request.grad_y.data();
      job->validated.input_shapes[1] = {batch, kOut};
      job->validated.backward = true;
      job->validated.row_wise = false;
      job->outputs = {request.y.data(), request.grad_x.data(),
                      request.grad_weight.data(), request.grad_bias.data()};
      for (int index = 1; index < 4; ++index) {
        job->validated.outputs.push_back({index, Precision::kFloat32, {}, 0});
      }
    }
    job->done = [&request, gate](InferJob& finished,
                                 const absl::Status& status) {
      request.phases = finished.phases;
      request.outcome.set_value(status);
      if (gate != nullptr) gate->Wait();
    };
    return job;
  }

  void ExpectMatchesReference(const TestRequest& request) {
    const int64_t batch = static_cast<int64_t>(request.x.size()) / kIn;
    const ReferenceResult expected = NaiveLinearRelu(
        weights_, batch, request.x.data(),
        request.grad_y.empty() ? nullptr : request.grad_y.data());
    EXPECT_LE(RelativeError(request.y, expected.y), 1e-5);
    if (!request.grad_y.empty()) {
      EXPECT_LE(RelativeError(request.grad_x, expected.grad_x), 1e-5);
      EXPECT_LE(RelativeError(request.grad_weight, expected.grad_weight), 1e-5);
      EXPECT_LE(RelativeError(request.grad_bias, expected.grad_bias), 1e-5);
    }
  }

  uint64_t Executions() const { return executions_.load(); }

  LinearWeights weights_;
  std::shared_ptr<const SequentialModel> model_;
  std::atomic<uint64_t> executions_{0};
};

TEST_F(SchedulerTest, InlineRunsOnTheCallersThread) {
  Scheduler scheduler({}, model_, Recorder());
  auto request = NewRequest(3, true, 1);
  std::future<absl::Status> outcome = request->outcome.get_future();
  scheduler.Submit(JobFor(*request));
  // Inline: finished before Submit returned.
  ASSERT_EQ(outcome.wait_for(0s), std::future_status::ready);
  EXPECT_TRUE(outcome.get().ok());
  ExpectMatchesReference(*request);
}

TEST_F(SchedulerTest, MergedForwardRequestsAreSplitBackCorrectly) {
  Scheduler::Options options;
  options.compute_threads = 1;
  options.max_batch_delay = 2s;  // generous: the batch flushes on size
  options.preferred_batch_rows = 1 + 2 + 3 + 4 + 5 + 6;
  Scheduler scheduler(options, model_, Recorder());
  std::vector<std::unique_ptr<TestRequest>> requests;
  std::vector<std::future<absl::Status>> outcomes;
  for (int64_t rows = 1; rows <= 6; ++rows) {
    requests.push_back(NewRequest(rows, false, 10 + rows));
    outcomes.push_back(requests.back()->outcome.get_future());
  }
  for (auto& request : requests) scheduler.Submit(JobFor(*request));
  for (auto& outcome : outcomes) EXPECT_TRUE(outcome.get().ok());
  for (auto& request : requests) ExpectMatchesReference(*request);
  EXPECT_EQ(Executions(), 1u) << "all six should share one call";
}

TEST_F(SchedulerTest, MergedBfloat16RequestsAreSplitBackCorrectly) {
  Scheduler::Options options;
  options.compute_threads = 1;
  options.max_batch_delay = 2s;
  options.preferred_batch_rows = 2 + 3 + 4;
  Scheduler scheduler(options, model_, Recorder());
  std::vector<std::unique_ptr<TestRequest>> requests;
  std::vector<std::vector<uint16_t>> inputs;
  std::vector<std::future<absl::Status>> outcomes;
  for (int64_t rows = 2; rows <= 4; ++rows) {
    requests.push_back(NewRequest(rows, false, 70 + rows));
    inputs.emplace_back(requests.back()->x.size());
    ToBfloat16(requests.back()->x.data(), inputs.back().data(),
               inputs.back().size());
    outcomes.push_back(requests.back()->outcome.get_future());
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    std::unique_ptr<InferJob> job = JobFor(*requests[i]);
    job->validated.input_precision = Precision::kBFloat16;
    job->validated.inputs[0] = inputs[i].data();
    scheduler.Submit(std::move(job));
  }
  for (auto& outcome : outcomes) EXPECT_TRUE(outcome.get().ok());
  EXPECT_EQ(Executions(), 1u);
  for (size_t i = 0; i < requests.size(); ++i) {
    const int64_t rows = static_cast<int64_t>(inputs[i].size()) / kIn;
    std::vector<float> alone(rows * kOut);
    ModelRun run{rows,
                 Precision::kBFloat16,
                 {inputs[i].data(), nullptr},
                 {alone.data(), nullptr, nullptr, nullptr}};
    ASSERT_TRUE(model_->Run(run).ok());
    std::vector<double> expected(alone.begin(), alone.end());
    EXPECT_LE(RelativeError(requests[i]->y, expected), 1e-5) << i;
  }
}

TEST_F(SchedulerTest, BackwardRequestsAreNeverMergedWithOthers) {
  Scheduler::Options options;
  options.compute_threads = 1;
  options.max_batch_delay = 50ms;
  options.preferred_batch_rows = 1000;  // never reached: flush on time
  Scheduler scheduler(options, model_, Recorder());
  std::vector<std::unique_ptr<TestRequest>> requests;
  std::vector<std::future<absl::Status>> outcomes;
  for (int i = 0; i < 6; ++i) {
    requests.push_back(NewRequest(2 + i, /*backward=*/i % 2 == 0, 20 + i));
    outcomes.push_back(requests.back()->outcome.get_future());
  }
  for (auto& request : requests) scheduler.Submit(JobFor(*request));
  for (auto& outcome : outcomes) EXPECT_TRUE(outcome.get().ok());
  // grad_weight and grad_bias are each request's own sums.
  for (auto& request : requests) ExpectMatchesReference(*request);
  // Three backward calls alone, the three forward ones at most merged.
  EXPECT_GE(Executions(), 4u);
}

TEST_F(SchedulerTest, FullQueueAnswersUnavailableAtOnce) {
  Scheduler::Options options;
  options.compute_threads = 1;
  options.max_queue_size = 2;
  Scheduler scheduler(options, model_, Recorder());
  Gate gate;
  auto pinned = NewRequest(1, false, 30);
  scheduler.Submit(JobFor(*pinned, &gate));
  gate.WaitUntilEntered();  // the only compute thread is now busy

  std::vector<std::unique_ptr<TestRequest>> requests;
  std::vector<std::future<absl::Status>> outcomes;
  for (int i = 0; i < 3; ++i) {
    requests.push_back(NewRequest(1, false, 31 + i));
    outcomes.push_back(requests.back()->outcome.get_future());
    scheduler.Submit(JobFor(*requests.back()));
  }
  ASSERT_EQ(outcomes[2].wait_for(0s), std::future_status::ready);
  const absl::Status rejected = outcomes[2].get();
  EXPECT_EQ(rejected.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(rejected.message().find("retry"), absl::string_view::npos);
  gate.Open();
  EXPECT_TRUE(outcomes[0].get().ok());
  EXPECT_TRUE(outcomes[1].get().ok());
}

TEST_F(SchedulerTest, LoneForwardRequestWaitsNoLongerThanTheDelay) {
  Scheduler::Options options;
  options.compute_threads = 1;
  options.max_batch_delay = 30ms;
  options.preferred_batch_rows = 1000;
  Scheduler scheduler(options, model_, Recorder());
  auto request = NewRequest(2, false, 40);
  std::future<absl::Status> outcome = request->outcome.get_future();
  scheduler.Submit(JobFor(*request));
  EXPECT_TRUE(outcome.get().ok());
  // Nobody joined, so it waited the whole delay, and then no more than
  // scheduling noise (bounded generously for a shared machine).
  EXPECT_GE(request->phases.queue, 30ms);
  EXPECT_LT(request->phases.queue, 30ms + 1s);
  ExpectMatchesReference(*request);
}

TEST_F(SchedulerTest, DeadlinePassedInTheQueueIsNotComputed) {
  Scheduler::Options options;
  options.compute_threads = 1;
  Scheduler scheduler(options, model_, Recorder());
  auto request = NewRequest(1, false, 50);
  std::future<absl::Status> outcome = request->outcome.get_future();
  std::unique_ptr<InferJob> job = JobFor(*request);
  job->deadline = std::chrono::system_clock::now() - 1ms;
  scheduler.Submit(std::move(job));
  EXPECT_EQ(outcome.get().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(request->y, std::vector<float>(kOut, -1.0f)) << "was computed";
  EXPECT_EQ(Executions(), 0u);
}

// A job whose client cancelled while it waited is answered CANCELLED and
// never computed; the one queued behind it, not cancelled, is.
TEST_F(SchedulerTest, CancelledInTheQueueIsNotComputed) {
  Gate gate;
  auto pinned = NewRequest(1, false, 70);
  auto cancelled = NewRequest(2, false, 71);
  auto kept = NewRequest(3, false, 72);
  std::future<absl::Status> cancelled_outcome = cancelled->outcome.get_future();
  std::future<absl::Status> kept_outcome = kept->outcome.get_future();
  std::atomic<bool> gone{false};
  Scheduler::Options options;
  options.compute_threads = 1;
  Scheduler scheduler(options, model_, Recorder());
  scheduler.Submit(JobFor(*pinned, &gate));
  gate.WaitUntilEntered();
  std::unique_ptr<InferJob> job = JobFor(*cancelled);
  job->cancelled = [&gone] { return gone.load(); };
  scheduler.Submit(std::move(job));
  job = JobFor(*kept);
  job->cancelled = [] { return false; };
  scheduler.Submit(std::move(job));
  gone.store(true);  // the client goes while its job is queued
  gate.Open();
  EXPECT_EQ(cancelled_outcome.get().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(cancelled->y, std::vector<float>(2 * kOut, -1.0f))
      << "was computed";
  EXPECT_TRUE(kept_outcome.get().ok());
  ExpectMatchesReference(*kept);
  EXPECT_EQ(Executions(), 2u);  // the pinned job and the kept one
}

TEST_F(SchedulerTest, StoppingAnswersQueuedJobsUnavailable) {
  Gate gate;
  auto pinned = NewRequest(1, false, 60);
  auto queued = NewRequest(1, false, 61);
  std::future<absl::Status> queued_outcome = queued->outcome.get_future();
  std::thread release;
  {
    Scheduler::Options options;
    options.compute_threads = 1;
    Scheduler scheduler(options, model_, Recorder());
    scheduler.Submit(JobFor(*pinned, &gate));
    gate.WaitUntilEntered();
    scheduler.Submit(JobFor(*queued));
    // The destructor stops taking work, then waits for the pinned thread.
    release = std::thread([&] {
      std::this_thread::sleep_for(20ms);
      gate.Open();
    });
  }
  release.join();
  EXPECT_EQ(queued_outcome.get().code(), absl::StatusCode::kUnavailable);
}

// Dynamic batching merges forward requests for a deep model as for one
// layer: every input row-gathered, every output scattered back.
TEST(StackSchedulerTest, MergedForwardRequestsOnAStackAreSplitBackCorrectly) {
  std::vector<SequentialLayerSpec> layers(3);
  const int64_t widths[] = {24, 16, 12, 5};
  for (size_t i = 0; i < layers.size(); ++i) {
    layers[i].weights = MakeDefaultWeights(widths[i], widths[i + 1], 9 + i);
    layers[i].relu = i + 1 < layers.size();
    layers[i].module = std::to_string(2 * i);
    layers[i].weight_name = layers[i].module + ".weight";
    layers[i].bias_name = layers[i].module + ".bias";
  }
  absl::StatusOr<std::unique_ptr<SequentialModel>> created =
      SequentialModel::Create(layers);
  ASSERT_TRUE(created.ok());
  const std::shared_ptr<const SequentialModel> model = std::move(*created);
  const size_t outputs = model->signature().outputs.size();

  Scheduler::Options options;
  options.compute_threads = 1;
  options.max_batch_delay = 2s;  // generous: the batch flushes on size
  options.preferred_batch_rows = 1 + 2 + 3 + 4;
  std::atomic<int> executions{0};
  Scheduler scheduler(
      options, model,
      [&](int64_t, Nanoseconds, Nanoseconds, Nanoseconds) { ++executions; });
  std::vector<std::vector<float>> xs, ys;
  std::vector<std::promise<absl::Status>> outcomes(4);
  for (int64_t rows = 1; rows <= 4; ++rows) {
    xs.push_back(RandomValues(rows * widths[0], 80 + rows));
    ys.emplace_back(rows * widths[3], -1.0f);
  }
  for (int64_t rows = 1; rows <= 4; ++rows) {
    auto job = std::make_unique<InferJob>();
    job->validated.batch = rows;
    job->validated.inputs = {xs[rows - 1].data(), nullptr};
    job->validated.input_shapes = {{rows, widths[0]}, {}};
    job->validated.outputs = {
        {0, Precision::kFloat32, {rows, widths[3]}, rows * widths[3]}};
    job->outputs.assign(outputs, nullptr);
    job->outputs[0] = ys[rows - 1].data();
    std::promise<absl::Status>* outcome = &outcomes[rows - 1];
    job->done = [outcome](InferJob&, const absl::Status& status) {
      outcome->set_value(status);
    };
    scheduler.Submit(std::move(job));
  }
  for (auto& outcome : outcomes) EXPECT_TRUE(outcome.get_future().get().ok());
  EXPECT_EQ(executions.load(), 1) << "all four should share one run";
  for (int64_t rows = 1; rows <= 4; ++rows) {
    const ReferenceStackResult expected =
        NaiveSequential(layers, rows, xs[rows - 1].data(), nullptr);
    EXPECT_LE(RelativeError(ys[rows - 1], expected.y), 1e-5) << rows;
  }
}

}  // namespace
}  // namespace reluserve
