// Token auth (--auth-token-file) on a real Server, plaintext and under
// mutual TLS: every gRPC call and REST request needs a good
// `authorization: Bearer <token>` and is answered UNAUTHENTICATED / 401
// (never UNAVAILABLE) without one; health, ServerLive, ServerReady,
// /v2/health/* and /metrics stay open for probes and scrapers; a reload
// rotates the tokens of a running server.

#include <grpcpp/generic/generic_stub.h>

#include <future>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/service/bearer_tokens.h"
#include "tests/support/file_testing.h"
#include "tests/support/http_testing.h"
#include "tests/support/secure_server_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::CallContext;
using ::reluserve::testing::ClientIdentity;
using ::reluserve::testing::GrpcStub;
using ::reluserve::testing::HttpClientFor;
using ::reluserve::testing::Plaintext;
using ::reluserve::testing::ServerMetadata;
using ::reluserve::testing::StartSecureServer;
using ::reluserve::testing::WithClientCert;
using Stub = inference::GRPCInferenceService::Stub;

constexpr char kMissing[] = "missing 'authorization: Bearer <token>'";
constexpr char kWrong[] = "not one of the server's";

class ServerTokensTest : public testing::TempDirTest {
 protected:
  void Start(bool mutual_tls) {
    WriteTokens("# the test's tokens\nfirst-token\n\nsecond-token\n");
    absl::StatusOr<std::shared_ptr<BearerTokens>> tokens =
        BearerTokens::Load(TokenFile());
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = *tokens;
    identity_ = mutual_tls ? WithClientCert() : Plaintext();
    server_ = StartSecureServer([&](Server::Options& options) {
      options.tokens = tokens_;
      if (mutual_tls) testing::UseTls(options, /*mutual=*/true);
    });
    ASSERT_NE(server_, nullptr);
    stub_ = GrpcStub(*server_, identity_);
  }

  std::string TokenFile() const { return PathFor("tokens"); }
  void WriteTokens(const std::string& text) const { WriteFile(text, "tokens"); }

  inference::ModelInferRequest InferRequest() const {
    inference::ModelInferRequest request;
    request.set_model_name("linear_relu");
    testing::AddInput(request, "x", {2, testing::kIn},
                      testing::RandomValues(2 * testing::kIn, 3));
    return request;
  }

  // Every RPC of the inference service but the exempt ones, with `token`.
  std::vector<std::pair<std::string, grpc::Status>> ProtectedCalls(
      const std::string& token) {
    std::vector<std::pair<std::string, grpc::Status>> calls;
    calls.emplace_back("ServerMetadata", ServerMetadata(*stub_, token));
    {
      inference::ModelMetadataRequest request;
      request.set_name("linear_relu");
      inference::ModelMetadataResponse response;
      calls.emplace_back(
          "ModelMetadata",
          stub_->ModelMetadata(CallContext(token).get(), request, &response));
    }
    {
      inference::ModelConfigRequest request;
      request.set_name("linear_relu");
      inference::ModelConfigResponse response;
      calls.emplace_back(
          "ModelConfig",
          stub_->ModelConfig(CallContext(token).get(), request, &response));
    }
    {
      inference::ModelStatisticsRequest request;
      inference::ModelStatisticsResponse response;
      calls.emplace_back(
          "ModelStatistics",
          stub_->ModelStatistics(CallContext(token).get(), request, &response));
    }
    {
      inference::ModelInferResponse response;
      calls.emplace_back("ModelInfer",
                         stub_->ModelInfer(CallContext(token).get(),
                                           InferRequest(), &response));
    }
    {
      std::unique_ptr<grpc::ClientContext> context = CallContext(token);
      auto stream = stub_->ModelStreamInfer(context.get());
      stream->Write(InferRequest());
      stream->WritesDone();
      inference::ModelStreamInferResponse response;
      while (stream->Read(&response)) {
      }
      calls.emplace_back("ModelStreamInfer", stream->Finish());
    }
    return calls;
  }

  void ExpectGrpcRefused(const std::string& token, const char* message) {
    for (const auto& [method, status] : ProtectedCalls(token)) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << method << ": " << status.error_message();
      EXPECT_TRUE(absl::StrContains(status.error_message(), message))
          << method << ": " << status.error_message();
    }
  }
  void ExpectGrpcAccepted(const std::string& token) {
    for (const auto& [method, status] : ProtectedCalls(token)) {
      EXPECT_TRUE(status.ok()) << method << ": " << status.error_message();
    }
  }

  grpc::Status HealthCheck() {
    auto channel = grpc::CreateChannel(
        server_->address(),
        identity_.trusted_ca.empty()
            ? grpc::InsecureChannelCredentials()
            : grpc::SslCredentials(
                  {testing::SharedTestCertificates().Read(identity_.trusted_ca),
                   testing::SharedTestCertificates().Read(identity_.key),
                   testing::SharedTestCertificates().Read(identity_.cert)}));
    grpc::GenericStub stub(channel);
    std::unique_ptr<grpc::ClientContext> context = CallContext();
    grpc::Slice empty("");  // HealthCheckRequest{service: ""}
    grpc::ByteBuffer request(&empty, 1), response;
    std::promise<grpc::Status> done;
    stub.UnaryCall(context.get(), "/grpc.health.v1.Health/Check",
                   grpc::StubOptions(), &request, &response,
                   [&done](grpc::Status status) { done.set_value(status); });
    return done.get_future().get();
  }

  // The REST requests that need a token, each with its authorization
  // header value (empty: none), on one keep-alive connection.
  void ExpectRest(const std::string& authorization, int status,
                  const char* message) {
    std::unique_ptr<httplib::Client> http =
        HttpClientFor(server_->http_port(), identity_);
    httplib::Headers headers;
    if (!authorization.empty()) headers.emplace("Authorization", authorization);
    const testing::HttpBody infer = testing::BinaryBody(
        nlohmann::json::object(),
        {{"x",
          {2, testing::kIn},
          testing::FloatBytes(testing::RandomValues(2 * testing::kIn, 3))}});
    httplib::Headers infer_headers = headers;
    infer_headers.insert(infer.headers.begin(), infer.headers.end());
    for (int round = 0; round < 2; ++round) {
      const std::vector<std::pair<std::string, httplib::Result>> answers = [&] {
        std::vector<std::pair<std::string, httplib::Result>> out;
        for (const char* path :
             {"/v2", "/v2/models/linear_relu", "/v2/models/linear_relu/ready",
              "/v2/models/linear_relu/config", "/v2/models/linear_relu/stats",
              "/v2/models/stats"}) {
          out.emplace_back(path, http->Get(path, headers));
        }
        out.emplace_back("POST /v2/repository/index",
                         http->Post("/v2/repository/index", headers, "{}",
                                    "application/json"));
        out.emplace_back(
            "POST infer",
            http->Post("/v2/models/linear_relu/infer", infer_headers,
                       infer.body, "application/octet-stream"));
        return out;
      }();
      for (const auto& [what, answer] : answers) {
        ASSERT_TRUE(answer)
            << what << ": " << httplib::to_string(answer.error());
        EXPECT_EQ(answer->status, status) << what << ": " << answer->body;
        if (status == 401) {
          EXPECT_TRUE(absl::StrContains(answer->body, message))
              << what << ": " << answer->body;
          EXPECT_EQ(answer->get_header_value("WWW-Authenticate"),
                    "Bearer realm=\"reluserve\"")
              << what;
        }
      }
    }
  }

  std::shared_ptr<BearerTokens> tokens_;
  ClientIdentity identity_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Stub> stub_;
};

TEST_F(ServerTokensTest, GrpcCallsWithoutAGoodTokenAreUnauthenticated) {
  Start(/*mutual_tls=*/false);
  ExpectGrpcRefused("", kMissing);
  ExpectGrpcRefused("third-token", kWrong);
  ExpectGrpcRefused("first-tokenX", kWrong);
  ExpectGrpcAccepted("first-token");
  ExpectGrpcAccepted("second-token");
}

TEST_F(ServerTokensTest, TheSchemeNameIsCaseInsensitiveAndOthersAreRefused) {
  Start(/*mutual_tls=*/false);
  for (const char* accepted : {"bearer first-token", "BEARER first-token"}) {
    std::unique_ptr<grpc::ClientContext> context = CallContext();
    context->AddMetadata("authorization", accepted);
    inference::ServerMetadataResponse response;
    EXPECT_TRUE(stub_->ServerMetadata(context.get(), {}, &response).ok())
        << accepted;
  }
  std::unique_ptr<grpc::ClientContext> context = CallContext();
  context->AddMetadata("authorization", "Basic Zmlyc3QtdG9rZW4=");
  inference::ServerMetadataResponse response;
  const grpc::Status basic =
      stub_->ServerMetadata(context.get(), {}, &response);
  EXPECT_EQ(basic.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(absl::StrContains(basic.error_message(), "scheme 'Basic'"))
      << basic.error_message();
}

TEST_F(ServerTokensTest, ProbesNeedNoToken) {
  Start(/*mutual_tls=*/false);
  inference::ServerLiveResponse live;
  EXPECT_TRUE(stub_->ServerLive(CallContext().get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  EXPECT_TRUE(stub_->ServerReady(CallContext().get(), {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
  const grpc::Status health = HealthCheck();
  EXPECT_TRUE(health.ok()) << health.error_message();
  std::unique_ptr<httplib::Client> http =
      HttpClientFor(server_->http_port(), identity_);
  for (const char* path : {"/v2/health/live", "/v2/health/ready"}) {
    httplib::Result answer = http->Get(path);
    ASSERT_TRUE(answer) << path;
    EXPECT_EQ(answer->status, 200) << path;
  }
  httplib::Result metrics =
      HttpClientFor(server_->metrics_port(), identity_)->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
}

TEST_F(ServerTokensTest, RestRequestsWithoutAGoodTokenGet401) {
  Start(/*mutual_tls=*/false);
  // Two rounds on one connection each: a refused request's body is read,
  // so the connection stays usable.
  ExpectRest("", 401, kMissing);
  ExpectRest("Bearer nope", 401, kWrong);
  ExpectRest("Token first-token", 401, "scheme 'Token'");
  ExpectRest("Bearer second-token", 200, "");
  ExpectRest("bearer first-token", 200, "");
}

TEST_F(ServerTokensTest, TokensAndMutualTlsTogether) {
  Start(/*mutual_tls=*/true);
  ExpectGrpcRefused("", kMissing);
  ExpectGrpcAccepted("first-token");
  ExpectRest("Bearer first-token", 200, "");
  ExpectRest("", 401, kMissing);
  EXPECT_TRUE(HealthCheck().ok());
}

TEST_F(ServerTokensTest, AReloadRotatesTheTokensOfARunningServer) {
  Start(/*mutual_tls=*/false);
  ExpectGrpcAccepted("first-token");
  WriteTokens("rotated-token\n");
  ASSERT_TRUE(tokens_->Reload().ok());
  ExpectGrpcRefused("first-token", kWrong);
  ExpectGrpcAccepted("rotated-token");
  ExpectRest("Bearer first-token", 401, kWrong);
  ExpectRest("Bearer rotated-token", 200, "");
  // A file left without a token keeps the tokens in force.
  WriteTokens("# nothing\n");
  EXPECT_FALSE(tokens_->Reload().ok());
  ExpectGrpcAccepted("rotated-token");
}

}  // namespace
}  // namespace reluserve
