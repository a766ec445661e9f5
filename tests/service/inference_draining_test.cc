// The service going away over real gRPC: a Server shut down under load
// finishes the calls in flight and turns the rest away, and a draining
// InferenceService reports not ready.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "server/core/weights.h"
#include "server/service/inference_service.h"
#include "server/service/server.h"
#include "tests/support/naive_reference.h"
#include "tests/support/service_testing.h"

namespace reluserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using ::reluserve::testing::AddInput;
using ::reluserve::testing::Floats;
using ::reluserve::testing::kIn;
using ::reluserve::testing::kOut;
using ::reluserve::testing::RandomValues;
using ::reluserve::testing::RelativeError;
using ::reluserve::testing::SchedulingName;
using ::reluserve::testing::Schedulings;
using ::reluserve::testing::ServiceTest;

// Shutdown while every caller has a large call outstanding: calls already
// computing finish with correct results, later ones get UNAVAILABLE (or
// cannot connect, also UNAVAILABLE), and none is cancelled or lost.
TEST_P(ServiceTest, ShutdownFinishesCallsInFlightAndTurnsTheRestAway) {
  StartServer(3072, 100);
  // Callers go on until turned away: a count small enough to run out would
  // let a fast caller finish before a starved one has warmed up (seen on a
  // loaded 2-core machine), and then never be turned away.
  constexpr int kCallers = 6, kMaxCallsEach = 100000;
  const auto stop_calling =
      std::chrono::steady_clock::now() + std::chrono::seconds(90);
  const ModelInferRequest request = Request(256, true);  // 3.1 MB of x
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 256, x_.data(), grad_y_.data());
  std::atomic<int> warmed_up{0};
  std::vector<int> ok(kCallers, 0), unavailable(kCallers, 0),
      other(kCallers, 0);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int i = 0;
           i < kMaxCallsEach && std::chrono::steady_clock::now() < stop_calling;
           ++i) {
        ModelInferResponse response;
        const grpc::Status status = Infer(request, &response);
        if (status.ok()) {
          EXPECT_LE(RelativeError(Floats(response.raw_output_contents(1)),
                                  expected.grad_x),
                    1e-5);
          if (ok[c]++ == 0) ++warmed_up;
        } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
          ++unavailable[c];
          break;
        } else {
          ++other[c];
          ADD_FAILURE() << "caller " << c << ": " << status.error_code() << " "
                        << status.error_message();
          break;
        }
      }
    });
  }
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (warmed_up.load() < kCallers &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(warmed_up.load(), kCallers);
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
  for (std::thread& caller : callers) caller.join();
  for (int c = 0; c < kCallers; ++c) {
    EXPECT_EQ(other[c], 0) << "caller " << c;
    EXPECT_EQ(unavailable[c], 1) << "caller " << c << " was never turned away";
  }
}

INSTANTIATE_TEST_SUITE_P(AllSchedulings, ServiceTest, Schedulings(),
                         SchedulingName);

// A draining service reports not ready and turns inference calls away.
TEST(DrainingServiceTest, ReportsNotReadyAndRefusesInference) {
  std::vector<ServedModelSpec> models(1);
  models[0].model = testing::SingleLayerModel(MakeDefaultWeights(kIn, kOut, 1));
  InferenceService service(std::move(models));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));

  service.StartDraining();
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse response;
    ASSERT_TRUE(stub->ServerReady(&context, {}, &response).ok());
    EXPECT_FALSE(response.ready());
  }
  {
    grpc::ClientContext context;
    ModelInferRequest request;
    request.set_model_name("linear_relu");
    AddInput(request, "x", {1, kIn}, RandomValues(kIn, 1));
    ModelInferResponse response;
    const grpc::Status status = stub->ModelInfer(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  server->Shutdown();
}

}  // namespace
}  // namespace reluserve
