// CreateClientChannel's service config: its JSON, then gRPC's retry policy
// and round_robin against in-process fake servers on 127.0.0.1 (UNAVAILABLE
// answers, a replica that drains or stops, streams refused before and after
// their first response).

#include "client/channel.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "grpc_service.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "grpcpp/server.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/loopback_server.h"

namespace reluserve {
namespace {

using ::testing::Each;
using ::testing::Gt;
using ::testing::HasSubstr;

nlohmann::json Config(const ChannelOptions& options,
                      const std::string& target) {
  return nlohmann::json::parse(ServiceConfigJson(options, target));
}

TEST(ServiceConfigTest, RetriesUnavailableOnTheInferenceService) {
  const nlohmann::json config = Config({}, "127.0.0.1:8001");
  EXPECT_FALSE(config.contains("loadBalancingConfig"));
  ASSERT_EQ(config["methodConfig"].size(), 1u);
  const nlohmann::json& method = config["methodConfig"][0];
  EXPECT_EQ(method["name"],
            nlohmann::json::parse(
                R"([{"service":"inference.GRPCInferenceService"}])"));
  const nlohmann::json& retry = method["retryPolicy"];
  EXPECT_EQ(retry["maxAttempts"], 5);
  EXPECT_EQ(retry["initialBackoff"], "0.05s");
  EXPECT_EQ(retry["maxBackoff"], "0.5s");
  EXPECT_EQ(retry["backoffMultiplier"], 2);
  EXPECT_EQ(retry["retryableStatusCodes"],
            nlohmann::json::parse(R"(["UNAVAILABLE","CANCELLED"])"));
}

TEST(ServiceConfigTest, OneAttemptHasNoRetryPolicy) {
  ChannelOptions options;
  options.max_attempts = 1;
  EXPECT_EQ(ServiceConfigJson(options, "127.0.0.1:8001"), "{}");
  options.max_attempts = 3;
  EXPECT_EQ(
      Config(options,
             "127.0.0.1:8001")["methodConfig"][0]["retryPolicy"]["maxAttempts"],
      3);
}

TEST(ServiceConfigTest, RoundRobinOverAListOfAddresses) {
  const std::string list = "ipv4:127.0.0.1:8001,127.0.0.1:8002";
  EXPECT_EQ(Config({}, list)["loadBalancingConfig"],
            nlohmann::json::parse(R"([{"round_robin":{}}])"));
  ChannelOptions pick_first;
  pick_first.load_balancing = LoadBalancing::kPickFirst;
  EXPECT_FALSE(Config(pick_first, list).contains("loadBalancingConfig"));
  ChannelOptions round_robin;
  round_robin.load_balancing = LoadBalancing::kRoundRobin;
  round_robin.max_attempts = 1;
  EXPECT_EQ(ServiceConfigJson(round_robin, "dns:///replicas:8001"),
            R"({"loadBalancingConfig":[{"round_robin":{}}]})");
}

TEST(ServiceConfigTest, ListsSeveralAddresses) {
  EXPECT_TRUE(ListsSeveralAddresses("ipv4:127.0.0.1:8001,127.0.0.1:8002"));
  EXPECT_TRUE(ListsSeveralAddresses("ipv6:[::1]:8001,[::1]:8002"));
  EXPECT_FALSE(ListsSeveralAddresses("ipv4:127.0.0.1:8001"));
  EXPECT_FALSE(ListsSeveralAddresses("127.0.0.1:8001"));
  EXPECT_FALSE(ListsSeveralAddresses("dns:///replicas:8001"));
  EXPECT_EQ(LoadBalancingName(LoadBalancing::kAuto), "auto");
  EXPECT_EQ(LoadBalancingName(LoadBalancing::kPickFirst), "pick_first");
  EXPECT_EQ(LoadBalancingName(LoadBalancing::kRoundRobin), "round_robin");
}

TEST(ServiceConfigTest, MaxAttemptsIsBounded) {
  ChannelOptions options;
  EXPECT_TRUE(ValidateChannelOptions(options).ok());
  for (int attempts : {0, 6}) {
    options.max_attempts = attempts;
    EXPECT_THAT(ValidateChannelOptions(options).message(),
                HasSubstr("max attempts is " + std::to_string(attempts)));
  }
}

// ModelInfer echoes the id; knobs make it answer UNAVAILABLE. Streams echo
// each request's id, or end with UNAVAILABLE before or after the first.
class FakeService final : public inference::GRPCInferenceService::Service {
 public:
  std::atomic<int> unavailable_first{0};
  std::atomic<bool> unavailable_all{false};
  std::atomic<int> cancelled_first{0};
  std::atomic<int> invalid_first{0};
  std::atomic<int> refuse_streams_first{0};
  std::atomic<bool> fail_streams_after_one{false};
  std::atomic<int> infer_calls{0};
  std::atomic<int> streams{0};

  grpc::Status ModelInfer(grpc::ServerContext*,
                          const inference::ModelInferRequest* request,
                          inference::ModelInferResponse* response) override {
    ++infer_calls;
    if (unavailable_all || unavailable_first.fetch_sub(1) > 0) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "server is shutting down; retry elsewhere");
    }
    if (cancelled_first.fetch_sub(1) > 0) return grpc::Status::CANCELLED;
    if (invalid_first.fetch_sub(1) > 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad x");
    }
    response->set_id(request->id());
    return grpc::Status::OK;
  }

  grpc::Status ModelStreamInfer(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<inference::ModelStreamInferResponse,
                               inference::ModelInferRequest>* stream) override {
    ++streams;
    if (refuse_streams_first.fetch_sub(1) > 0) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
    }
    inference::ModelInferRequest request;
    while (stream->Read(&request)) {
      inference::ModelStreamInferResponse reply;
      reply.mutable_infer_response()->set_id(request.id());
      if (!stream->Write(reply)) break;
      if (fail_streams_after_one) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining");
      }
    }
    return grpc::Status::OK;
  }
};

struct FakeServer {
  FakeServer() : server(testing::StartOnLoopback(&service, &port)) {}
  ~FakeServer() { Stop(); }
  void Stop() {
    if (server != nullptr) {
      server->Shutdown(std::chrono::system_clock::now() +
                       std::chrono::seconds(2));
      server.reset();
    }
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }

  FakeService service;
  int port = 0;  // before `server`, which sets it
  std::unique_ptr<grpc::Server> server;
};

class ChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto& server : servers_) ASSERT_GT(server.port, 0);
  }

  // "ipv4:" and every server's address.
  std::string List() const {
    std::vector<std::string> addresses;
    for (const auto& server : servers_) addresses.push_back(server.address());
    return "ipv4:" + absl::StrJoin(addresses, ",");
  }

  // A ModelInfer call with id `id` on `channel`.
  static grpc::Status Infer(grpc::Channel& channel, const std::string& id,
                            const std::string& payload = "") {
    auto stub = inference::GRPCInferenceService::NewStub(
        std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    inference::ModelInferRequest request;
    request.set_id(id);
    if (!payload.empty()) request.add_raw_input_contents(payload);
    inference::ModelInferResponse response;
    grpc::Status status = stub->ModelInfer(&context, request, &response);
    if (status.ok() && response.id() != id) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "wrong id");
    }
    return status;
  }

  // Calls until every server has answered one, at most `limit`; the
  // failures by then.
  int InferUntilAllServed(grpc::Channel& channel, int limit) {
    int failures = 0;
    for (int i = 0; i < limit; ++i) {
      if (!Infer(channel, std::to_string(i)).ok()) ++failures;
      bool all = true;
      for (const auto& server : servers_) {
        all = all && server.service.infer_calls > 0;
      }
      if (all && i >= 30) break;
    }
    return failures;
  }

  std::vector<int> Calls() const {
    std::vector<int> calls;
    for (const auto& server : servers_) {
      calls.push_back(server.service.infer_calls);
    }
    return calls;
  }

  FakeServer servers_[3];
};

TEST_F(ChannelTest, UnavailableIsRetriedUpToMaxAttempts) {
  FakeService& service = servers_[0].service;
  service.unavailable_first = 4;
  auto channel = CreateClientChannel(servers_[0].address());
  EXPECT_TRUE(Infer(*channel, "a").ok());
  EXPECT_EQ(service.infer_calls, 5);

  service.unavailable_all = true;
  ChannelOptions three;
  three.max_attempts = 3;
  const auto start = std::chrono::steady_clock::now();
  const grpc::Status status =
      Infer(*CreateClientChannel(servers_[0].address(), three), "b");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("shutting down"));
  EXPECT_EQ(service.infer_calls, 5 + 3);
  // Two backoffs: 50 and 100 ms, each -20% at least.
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(110));
}

TEST_F(ChannelTest, CancelledByTheServerIsRetriedOtherErrorsAreNot) {
  FakeService& service = servers_[0].service;
  auto channel = CreateClientChannel(servers_[0].address());
  service.cancelled_first = 1;
  EXPECT_TRUE(Infer(*channel, "a").ok());
  EXPECT_EQ(service.infer_calls, 2);
  service.invalid_first = 1;
  EXPECT_EQ(Infer(*channel, "b").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(service.infer_calls, 3);
}

TEST_F(ChannelTest, OneAttemptMeansNoRetry) {
  servers_[0].service.unavailable_first = 1;
  ChannelOptions once;
  once.max_attempts = 1;
  const grpc::Status status =
      Infer(*CreateClientChannel(servers_[0].address(), once), "a");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(servers_[0].service.infer_calls, 1);
}

TEST_F(ChannelTest, RequestsAboveGrpcsDefaultRetryBufferAreRetried) {
  // 4 MB, far above the 256 KiB gRPC buffers for retries by default.
  servers_[0].service.unavailable_first = 2;
  auto channel = CreateClientChannel(servers_[0].address());
  EXPECT_TRUE(Infer(*channel, "big", std::string(4 << 20, 'x')).ok());
  EXPECT_EQ(servers_[0].service.infer_calls, 3);
}

TEST_F(ChannelTest, TheClientLibraryRetriesToo) {
  servers_[0].service.unavailable_first = 2;
  ClientOptions options;
  options.target = servers_[0].address();
  absl::StatusOr<inference::ModelInferRequest> request =
      Client(options).MakeRequest(
          {{{"x", Tensor{{1, 2}, {1.0f, 2.0f}}}}, {}, "c"});
  ASSERT_TRUE(request.ok()) << request.status();
  // The fake's reply has no outputs: decoding succeeds with none.
  absl::StatusOr<InferResult> result = Client(options).Infer(*request);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->id, "c");
  EXPECT_EQ(servers_[0].service.infer_calls, 3);
}

TEST_F(ChannelTest, RoundRobinSpreadsCallsOverEveryAddress) {
  auto channel = CreateClientChannel(List());
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(5)));
  EXPECT_EQ(InferUntilAllServed(*channel, 300), 0);
  EXPECT_THAT(Calls(), Each(Gt(0)));
}

TEST_F(ChannelTest, PickFirstKeepsToOneAddress) {
  ChannelOptions options;
  options.load_balancing = LoadBalancing::kPickFirst;
  auto channel = CreateClientChannel(List(), options);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Infer(*channel, "p").ok());
  EXPECT_EQ(Calls(), (std::vector<int>{20, 0, 0}));
}

TEST_F(ChannelTest, ADrainingReplicaCostsNoFailedCall) {
  // Server 0 answers UNAVAILABLE, as a draining ReluServe does: the retry
  // goes to the next address.
  servers_[0].service.unavailable_all = true;
  auto channel = CreateClientChannel(List());
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(5)));
  EXPECT_EQ(InferUntilAllServed(*channel, 300), 0);
  EXPECT_GT(servers_[0].service.infer_calls, 0);  // it was tried
}

TEST_F(ChannelTest, AStoppedReplicaCostsNoFailedCall) {
  auto channel = CreateClientChannel(List());
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() +
                                        std::chrono::seconds(5)));
  ASSERT_EQ(InferUntilAllServed(*channel, 300), 0);
  servers_[1].Stop();
  const std::vector<int> before = Calls();
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(Infer(*channel, absl::StrCat("after ", i)).ok()) << i;
  }
  const std::vector<int> after = Calls();
  EXPECT_EQ(after[1], before[1]);
  EXPECT_EQ((after[0] - before[0]) + (after[2] - before[2]), 60);
}

// One ModelStreamInfer stream on `channel`: sends `messages` requests, each
// after the previous answer; the status, and how many answers came.
//
// A failed Write does not end the loop, Read decides: when the server
// refuses the stream (Trailers-Only) while the first message is being
// written, gRPC 1.51 reports that write as failed although the retry sends
// it again on the next attempt, whose answer must then be read (Finish
// waits for unread messages until the deadline).
grpc::Status Stream(grpc::Channel& channel, int messages, int* answers) {
  auto stub = inference::GRPCInferenceService::NewStub(
      std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  auto stream = stub->ModelStreamInfer(&context);
  *answers = 0;
  for (int i = 0; i < messages; ++i) {
    inference::ModelInferRequest request;
    request.set_id(std::to_string(i));
    stream->Write(request);
    inference::ModelStreamInferResponse reply;
    if (!stream->Read(&reply)) break;
    ++*answers;
  }
  stream->WritesDone();
  return stream->Finish();
}

TEST_F(ChannelTest, AStreamRefusedBeforeItsFirstAnswerIsRetried) {
  FakeService& service = servers_[0].service;
  service.refuse_streams_first = 2;
  auto channel = CreateClientChannel(servers_[0].address());
  int answers = 0;
  const grpc::Status status = Stream(*channel, 3, &answers);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(answers, 3);
  EXPECT_EQ(service.streams, 3);
}

TEST_F(ChannelTest, AStreamThatHasAnsweredIsNeverRetried) {
  FakeService& service = servers_[0].service;
  service.fail_streams_after_one = true;
  auto channel = CreateClientChannel(servers_[0].address());
  int answers = 0;
  const grpc::Status status = Stream(*channel, 3, &answers);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(answers, 1);
  EXPECT_EQ(service.streams, 1);
}

}  // namespace
}  // namespace reluserve
