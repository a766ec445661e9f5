#include "server/service/grpc_call_metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace reluserve {
namespace {

TEST(GrpcCallCounterTest, WritesOneSamplePerMethodAndCodeSeen) {
  GrpcCallCounter counter;
  counter.Record("/inference.GRPCInferenceService/ModelInfer",
                 grpc::StatusCode::OK);
  counter.Record("/inference.GRPCInferenceService/ModelInfer",
                 grpc::StatusCode::OK);
  counter.Record("/inference.GRPCInferenceService/ModelInfer",
                 grpc::StatusCode::INVALID_ARGUMENT);
  counter.Record("/grpc.health.v1.Health/Check",
                 grpc::StatusCode::UNAUTHENTICATED);
  PrometheusText out;
  counter.Write(out);
  EXPECT_EQ(
      out.text(),
      "# HELP grpc_server_handled_total gRPC calls completed on the "
      "server, by method and status code.\n"
      "# TYPE grpc_server_handled_total counter\n"
      "grpc_server_handled_total{grpc_service=\"grpc.health.v1.Health\","
      "grpc_method=\"Check\",grpc_code=\"OK\"} 0\n"
      "grpc_server_handled_total{grpc_service=\"grpc.health.v1.Health\","
      "grpc_method=\"Check\",grpc_code=\"Unauthenticated\"} 1\n"
      "grpc_server_handled_total{grpc_service=\"inference."
      "GRPCInferenceService\",grpc_method=\"ModelInfer\",grpc_code=\"OK\"} "
      "2\n"
      "grpc_server_handled_total{grpc_service=\"inference."
      "GRPCInferenceService\",grpc_method=\"ModelInfer\",grpc_code="
      "\"InvalidArgument\"} 1\n");
}

TEST(GrpcCallCounterTest, CountsEveryCallFromConcurrentThreads) {
  GrpcCallCounter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&counter, t] {
      const std::string method = "/s.S/M" + std::to_string(t % 2);
      for (int i = 0; i < 10000; ++i) {
        counter.Record(method, grpc::StatusCode::UNAVAILABLE);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  PrometheusText out;
  counter.Write(out);
  for (const char* method : {"M0", "M1"}) {
    EXPECT_NE(out.text().find(std::string("grpc_method=\"") + method +
                              "\",grpc_code=\"Unavailable\"} 20000\n"),
              std::string::npos)
        << out.text();
  }
}

}  // namespace
}  // namespace reluserve
