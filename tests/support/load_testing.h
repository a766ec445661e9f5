#ifndef RELUSERVE_TESTS_SUPPORT_LOAD_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_LOAD_TESTING_H_

// Shared by the LoadGenerator tests: an in-process fake
// GRPCInferenceService with knobs, LoadGeneratorTest, which serves it on
// 127.0.0.1:<free port>, and FakeClock, a LoadClock that moves only when the
// test says.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "client/load_clock.h"
#include "client/load_generator.h"
#include "grpc_service.grpc.pb.h"
#include "grpcpp/server.h"
#include "gtest/gtest.h"
#include "tests/support/loopback_server.h"

namespace reluserve::testing {

inline constexpr int64_t kK = 6;
inline constexpr int64_t kM = 3;

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
    // What reluserve-server lists for one Linear+ReLU.
    auto add = [](auto* tensor, const char* name,
                  std::initializer_list<int64_t> shape) {
      tensor->set_name(name);
      tensor->set_datatype("FP32");
      for (int64_t dim : shape) tensor->add_shape(dim);
    };
    add(response->add_inputs(), "x", {-1, kK});
    add(response->add_inputs(), "grad_y", {-1, kM});
    add(response->add_outputs(), "y", {-1, kM});
    add(response->add_outputs(), "grad_x", {-1, kK});
    add(response->add_outputs(), "grad_weight", {kM, kK});
    add(response->add_outputs(), "grad_bias", {kM});
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

// A LoadClock whose time moves only when the test says (Advance, AdvanceTo),
// never with real time. A wait returns once its `done()` holds (checked when
// its condition variable is notified, or the time moves) or once the fake
// time reaches its end. AdvanceTo returns only after every wait has seen the
// new time: each has returned, or checked and blocked again; so a test can
// tell at once whether a wait is still blocked.
//
// Thread safety: every method may be called from any thread, but AdvanceTo
// and Advance from one thread at a time and never with a waiter's mutex held
// (e.g. a Step's, from inside a `done`).
class FakeClock final : public load_internal::LoadClock {
 public:
  using Clock = load_internal::Clock;

  // Far from steady_clock's epoch, as a real present is.
  explicit FakeClock(Clock::time_point start = Clock::time_point() +
                                               std::chrono::hours(24))
      : now_(start) {}

  Clock::time_point Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }

  void WaitUntil(std::unique_lock<std::mutex>& lock,
                 std::condition_variable& cv, Clock::time_point when,
                 const std::function<bool()>& done) const override {
    Waiter waiter{lock.mutex(), &cv};
    {
      std::lock_guard<std::mutex> guard(mu_);
      waiters_.push_back(&waiter);
    }
    // `lock` stays held from each check until cv.wait() releases it, and
    // AdvanceTo takes it before notifying: no wake-up is lost.
    while (!done()) {
      {
        std::lock_guard<std::mutex> guard(mu_);
        if (now_ >= when) break;
        waiter.seen = now_;
        changed_.notify_all();
      }
      cv.wait(lock);
    }
    // Leaving: not while AdvanceTo may still touch this waiter's mutex, and
    // not holding that mutex while waiting for AdvanceTo.
    lock.unlock();
    {
      std::lock_guard<std::mutex> notifying(notify_mu_);
      std::lock_guard<std::mutex> guard(mu_);
      waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &waiter));
      changed_.notify_all();
    }
    lock.lock();
  }

  // Never backwards.
  void AdvanceTo(Clock::time_point when) {
    Clock::time_point now;
    {
      std::lock_guard<std::mutex> notifying(notify_mu_);
      std::vector<Waiter*> waiters;
      {
        std::lock_guard<std::mutex> guard(mu_);
        now_ = std::max(now_, when);
        now = now_;
        waiters = waiters_;
      }
      for (Waiter* waiter : waiters) {
        std::lock_guard<std::mutex> guard(*waiter->mu);
        waiter->cv->notify_all();
      }
    }
    std::unique_lock<std::mutex> guard(mu_);
    changed_.wait(guard, [&] {
      return std::all_of(waiters_.begin(), waiters_.end(),
                         [&](const Waiter* w) { return w->seen >= now; });
    });
  }
  void Advance(Clock::duration by) { AdvanceTo(Now() + by); }

  // Waits (in real time, `timeout` at most) until at least `count` waits are
  // blocked at the present fake time; false if they never were.
  bool AwaitWaiters(size_t count, std::chrono::milliseconds timeout =
                                      std::chrono::seconds(20)) const {
    std::unique_lock<std::mutex> guard(mu_);
    return changed_.wait_for(guard, timeout, [&] {
      return static_cast<size_t>(std::count_if(
                 waiters_.begin(), waiters_.end(),
                 [&](const Waiter* w) { return w->seen == now_; })) >= count;
    });
  }

  // Waits in progress (blocked or about to check).
  size_t waiters() const {
    std::lock_guard<std::mutex> guard(mu_);
    return waiters_.size();
  }

 private:
  struct Waiter {
    std::mutex* mu;
    std::condition_variable* cv;
    Clock::time_point seen = Clock::time_point::min();  // guarded by mu_
  };

  // Serialises AdvanceTo's notifying with waiters leaving; taken before
  // mu_ and before a waiter's mutex, never while holding either.
  mutable std::mutex notify_mu_;
  // Guards now_, waiters_ and each Waiter's `seen`; innermost.
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;  // a waiter came, saw or left
  Clock::time_point now_;
  mutable std::vector<Waiter*> waiters_;
};

// Runs `options` and expects success; no steps when the run failed.
inline std::vector<StepResult> RunLoad(const LoadOptions& options) {
  absl::StatusOr<std::vector<StepResult>> steps = LoadGenerator(options).Run();
  EXPECT_TRUE(steps.ok()) << steps.status();
  return steps.ok() ? *steps : std::vector<StepResult>();
}

class LoadGeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = StartOnLoopback(&service_, &port_);
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

  std::vector<StepResult> Run(const LoadOptions& options) {
    return RunLoad(options);
  }

  FakeService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_LOAD_TESTING_H_
