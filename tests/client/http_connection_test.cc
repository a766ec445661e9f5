// HttpConnection against an in-process fake REST server
// (tests/support/fake_http_server.h): targets, keep-alive, the request's
// bytes and headers, retries on 503, deadlines, refused connections and
// Abort().

#include "client/http_connection.h"

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/fake_http_server.h"
#include "tests/support/port_testing.h"

namespace reluserve {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
constexpr int64_t kK = testing::FakeHttpServer::kK;

// x [1, 6] as binary FP32.
HttpInferRequest SmallRequest() {
  InferInputs inputs;
  inputs.tensors.push_back({"x", {{1, kK}, std::vector<float>(kK, 0.5f)}});
  return *EncodeHttpInferRequest(*MakeInferRequest(ClientOptions(), inputs),
                                 HttpTensors::kBinary);
}

TEST(ParseHttpTargetTest, TakesOneHostAndPort) {
  struct Case {
    const char* target;
    const char* host;
    int port;
  };
  for (const Case& c : {Case{"127.0.0.1:8000", "127.0.0.1", 8000},
                        Case{"http://localhost:80/", "localhost", 80},
                        Case{"[::1]:8000", "::1", 8000},
                        Case{"http://[fe80::1]:1", "fe80::1", 1},
                        Case{"https://localhost:443/", "localhost", 443}}) {
    absl::StatusOr<HttpEndpoint> endpoint = ParseHttpTarget(c.target);
    ASSERT_TRUE(endpoint.ok()) << c.target << ": " << endpoint.status();
    EXPECT_EQ(endpoint->host, c.host);
    EXPECT_EQ(endpoint->port, c.port);
  }
  for (const char* bad :
       {"", "localhost", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000",
        "ipv4:127.0.0.1:8000", "ipv4:127.0.0.1:8000,127.0.0.1:8001",
        "dns:///replicas:8000", "https://host", "[::1]", "[::1]8000",
        ":8000"}) {
    absl::StatusOr<HttpEndpoint> endpoint = ParseHttpTarget(bad);
    EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_THAT(endpoint.status().message(), HasSubstr("--protocol http"));
  }
}

TEST(HttpConnectionTest, BadTargetFailsEveryCall) {
  const HttpConnection connection("ipv4:127.0.0.1:1", milliseconds(1000), 5);
  EXPECT_EQ(connection.Get("/v2").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(connection.PostInfer(SmallRequest(), "1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(connection.WaitForConnection(milliseconds(100)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HttpConnectionTest, SendsTheHeaderAndBinaryOverOneKeptConnection) {
  testing::FakeHttpServer server;
  const HttpConnection connection(server.target(), milliseconds(5000), 1);
  const HttpInferRequest request = SmallRequest();
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<HttpAnswer> answer =
        connection.PostInfer(request, std::to_string(i));
    ASSERT_TRUE(answer.ok()) << answer.status();
    EXPECT_EQ(answer->status, 200);
    ASSERT_TRUE(answer->header_length.has_value());
    EXPECT_GT(answer->round_trip, Clock::duration::zero());
  }
  EXPECT_THAT(server.peers(), SizeIs(1)) << "one keep-alive connection";
  const testing::FakeHttpServer::Seen seen = server.last_request();
  EXPECT_EQ(seen.content_type, "application/octet-stream");
  EXPECT_EQ(seen.accept_encoding, "identity");
  const std::string header = request.HeaderWithId("4");
  EXPECT_EQ(seen.header_length, std::to_string(header.size()));
  EXPECT_EQ(seen.body, header + request.binary);
}

TEST(HttpConnectionTest, RetriesUnavailableAnswersUpToMaxAttempts) {
  testing::FakeHttpServer server;
  server.unavailable_first = 2;
  const HttpConnection connection(server.target(), milliseconds(5000), 3);
  const Clock::time_point start = Clock::now();
  absl::StatusOr<HttpAnswer> answer = connection.PostInfer(SmallRequest(), "");
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 200);
  EXPECT_EQ(server.infer_calls, 3);
  // 50 ms, then 100 ms between the attempts; the round trip counts them.
  EXPECT_GE(Clock::now() - start, milliseconds(150));
  EXPECT_GE(answer->round_trip, milliseconds(150));

  server.infer_calls = 0;
  server.unavailable_first = 5;
  const HttpConnection once(server.target(), milliseconds(5000), 1);
  answer = once.PostInfer(SmallRequest(), "");
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 503);
  EXPECT_EQ(server.infer_calls, 1);
}

TEST(HttpConnectionTest, RetriesStopAtTheDeadline) {
  testing::FakeHttpServer server;
  server.unavailable_all = true;
  const HttpConnection connection(server.target(), milliseconds(120), 5);
  absl::StatusOr<HttpAnswer> answer = connection.PostInfer(SmallRequest(), "");
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 503);
  // 50 ms after the first, the second; 100 ms more would pass 120 ms.
  EXPECT_EQ(server.infer_calls, 2);
}

TEST(HttpConnectionTest, SlowAnswersMissTheDeadline) {
  testing::FakeHttpServer server;
  server.delay_ms = 400;
  const HttpConnection connection(server.target(), milliseconds(100), 5);
  const Clock::time_point start = Clock::now();
  absl::StatusOr<HttpAnswer> answer = connection.PostInfer(SmallRequest(), "");
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kDeadlineExceeded)
      << answer.status();
  EXPECT_LT(Clock::now() - start, milliseconds(350));
  server.delay_ms = 0;
  // The connection recovers for the next request.
  answer = connection.PostInfer(SmallRequest(), "");
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->status, 200);
}

TEST(HttpConnectionTest, RefusedConnectionsAreUnavailable) {
  const testing::HeldPort held;
  const std::string target = held.target();
  const HttpConnection connection(target, milliseconds(2000), 3);
  const Clock::time_point start = Clock::now();
  absl::StatusOr<HttpAnswer> answer = connection.PostInfer(SmallRequest(), "");
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(answer.status().message(), HasSubstr("cannot reach " + target));
  // Three attempts, 50 and 100 ms apart.
  EXPECT_GE(Clock::now() - start, milliseconds(150));
  EXPECT_EQ(connection.Get("/v2").status().code(),
            absl::StatusCode::kUnavailable);
  const absl::Status waited = connection.WaitForConnection(milliseconds(200));
  EXPECT_EQ(waited.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(waited.message(), HasSubstr("--connect-timeout-ms"));
  EXPECT_LT(Clock::now() - start, milliseconds(1500));
}

TEST(HttpConnectionTest, WaitForConnectionWaitsForAServerStartingLate) {
  testing::HeldPort held;
  const int port = held.port();
  auto connection =
      std::make_unique<HttpConnection>(held.target(), milliseconds(1000), 1);
  httplib::Server late;
  late.Get("/v2/health/live", [](const httplib::Request&,
                                 httplib::Response& res) { res.status = 200; });
  std::thread starter([&late, &held, port] {
    std::this_thread::sleep_for(milliseconds(150));
    held.Release();
    late.listen("127.0.0.1", port);
  });
  EXPECT_TRUE(connection->WaitForConnection(milliseconds(3000)).ok());
  connection.reset();  // else the server waits out its keep-alive
  late.stop();
  starter.join();
}

TEST(HttpConnectionTest, AbortBreaksOffARequestInProgress) {
  testing::FakeHttpServer server;
  server.delay_ms = 1000;
  const HttpConnection connection(server.target(), milliseconds(10000), 5);
  std::thread aborter([&connection] {
    std::this_thread::sleep_for(milliseconds(100));
    connection.Abort();
  });
  const Clock::time_point start = Clock::now();
  absl::StatusOr<HttpAnswer> answer = connection.PostInfer(SmallRequest(), "");
  aborter.join();
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kCancelled)
      << answer.status();
  EXPECT_LT(Clock::now() - start, milliseconds(800));
}

}  // namespace
}  // namespace reluserve
