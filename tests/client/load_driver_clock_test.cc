// The Driver's open-loop schedule on a FakeClock against the in-process
// fake server (tests/support/load_testing.h): each arrival on time, the
// warm-up's end, the measured seconds exact.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "client/client.h"
#include "client/load_driver.h"
#include "client/load_generator.h"
#include "client/load_step.h"
#include "tests/support/load_testing.h"

namespace reluserve {
namespace {

using load_internal::Clock;
using load_internal::Driver;
using load_internal::FromSeconds;
using load_internal::Transport;
using ::reluserve::testing::FakeClock;
using std::chrono::seconds;

class LoadDriverClockTest : public testing::LoadGeneratorTest {
 protected:
  std::shared_ptr<Transport> Connect() {
    auto transport = std::make_shared<Transport>();
    transport->timeout = seconds(5);
    ChannelOptions channel;
    channel.http_proxy = false;
    transport->channels.push_back(
        CreateClientChannel("127.0.0.1:" + std::to_string(port_), channel));
    transport->stubs.push_back(
        std::make_unique<grpc::GenericStub>(transport->channels.back()));
    ClientOptions statistics;
    statistics.deadline = seconds(5);
    transport->statistics =
        std::make_shared<Client>(statistics, transport->channels.back());
    inference::ModelInferRequest request;
    request.set_model_name("linear_relu");
    auto* x = request.add_inputs();
    x->set_name("x");
    x->set_datatype("FP32");
    x->add_shape(1);
    x->add_shape(testing::kK);
    request.add_raw_input_contents(std::string(4 * testing::kK, '\0'));
    transport->body = grpc::Slice(request.SerializeAsString());
    transport->expected_outputs = 1;
    return transport;
  }

  // Runs one open-loop step at `rate` on `clock_`, moving the fake time to
  // each arrival's due time once the driver waits for it, `arrivals` of
  // them (the first is due at once).
  StepResult RunOpenLoop(const LoadOptions& options, double rate,
                         int arrivals) {
    const Clock::time_point start = clock_.Now();
    Driver driver(options, Connect(), start + seconds(60), progress_, 1,
                  clock_);
    absl::StatusOr<StepResult> result;
    std::thread run([&] { result = driver.RunStep(0, true, rate); });
    ArrivalSchedule schedule(options.arrivals, rate, options.seed * 1000003u);
    schedule.Next();
    for (int i = 1; i < arrivals; ++i) {
      const Clock::time_point due = start + FromSeconds(schedule.Next());
      EXPECT_TRUE(clock_.AwaitWaiters(1)) << i;
      clock_.AdvanceTo(due);
    }
    run.join();
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : StepResult{};
  }

  FakeClock clock_;
  const LoadGenerator::ProgressCallback progress_;
};

TEST_F(LoadDriverClockTest, OpenLoopForADurationSendsEachArrivalOnTime) {
  LoadOptions options = Options();
  options.arrivals = Arrivals::kConstant;
  options.duration_s = 0.1;
  const Clock::time_point start = clock_.Now();
  // 100/s for 0.1 s: arrivals at 0, 10, ..., 90 ms; the one at 100 ms is
  // past the window, so the fake time never goes beyond 90 ms.
  const StepResult result = RunOpenLoop(options, 100, 10);
  EXPECT_EQ(clock_.Now(), start + FromSeconds(0.09));
  EXPECT_DOUBLE_EQ(result.seconds, 0.1);
  EXPECT_EQ(result.requests, 10);
  EXPECT_EQ(result.successes, 10);
  EXPECT_EQ(result.dropped, 0);
  EXPECT_EQ(result.late, 0);
  EXPECT_EQ(service_.infer_calls, 10);
}

TEST_F(LoadDriverClockTest, OpenLoopWarmupEndsOnTheFakeSchedule) {
  // 50 ms of warm-up at 100/s: 5 arrivals uncounted, then the 10 requests,
  // measured from 50 ms to the last answer (at 140 ms, when the fake time
  // stops).
  LoadOptions options = Options();
  options.arrivals = Arrivals::kConstant;
  options.warmup_s = 0.05;
  options.requests = 10;
  const Clock::time_point start = clock_.Now();
  const StepResult result = RunOpenLoop(options, 100, 15);
  EXPECT_EQ(clock_.Now(), start + FromSeconds(0.14));
  EXPECT_EQ(result.requests, 10);
  EXPECT_EQ(result.successes, 10);
  EXPECT_EQ(result.late, 0);
  EXPECT_DOUBLE_EQ(result.seconds, 0.09);
  EXPECT_EQ(service_.infer_calls, 15);
}

}  // namespace
}  // namespace reluserve
