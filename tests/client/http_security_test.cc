// The HTTP side of the client's security against the in-process fake REST
// server speaking TLS (tests/support/fake_http_server.h, an
// httplib::SSLServer): https targets, the right and a wrong CA, a plaintext
// server, mutual TLS with a client certificate, none, or one from another
// CA; the bearer token as a header over plaintext and TLS, 401 as
// UNAUTHENTICATED and never retried; the load generator over HTTPS.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "client/client_security.h"
#include "client/http_client.h"
#include "client/http_connection.h"
#include "client/load_generator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/client_tls_testing.h"
#include "tests/support/fake_http_server.h"
#include "tests/support/load_testing.h"

namespace reluserve {
namespace {

using ::testing::Each;
using ::testing::HasSubstr;
using ::testing::SizeIs;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using testing::FakeHttpServer;

class HttpSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs_ = new testing::TestCertificates(); }
  static void TearDownTestSuite() { delete certs_; }
  void SetUp() override { ASSERT_EQ(certs_->error(), ""); }

  // A TLS server with `name`.pem/.key; mutual TLS with `client_ca`.
  static FakeHttpServer::Security ServerTls(
      const std::string& client_ca = "", const std::string& name = "server") {
    FakeHttpServer::Security security;
    security.cert_path = certs_->Path(name + ".pem");
    security.key_path = certs_->Path(name + ".key");
    if (!client_ca.empty()) security.client_ca_path = certs_->Path(client_ca);
    return security;
  }

  static ClientSecurity Tls(const std::string& ca,
                            const std::string& client = "") {
    return testing::ClientTls(*certs_, ca, client);
  }

  static ClientOptions Options(const std::string& target,
                               const ClientSecurity& security) {
    ClientOptions options;
    options.target = target;
    options.channel.security = security;
    options.deadline = std::chrono::seconds(5);
    return options;
  }

  static testing::TestCertificates* certs_;
};

testing::TestCertificates* HttpSecurityTest::certs_ = nullptr;

TEST_F(HttpSecurityTest, HttpsTargetsAreTaken) {
  absl::StatusOr<HttpEndpoint> https = ParseHttpTarget("https://host:8443/");
  ASSERT_TRUE(https.ok()) << https.status();
  EXPECT_EQ(https->host, "host");
  EXPECT_EQ(https->port, 8443);
  EXPECT_TRUE(https->tls);
  EXPECT_FALSE(ParseHttpTarget("http://host:80")->tls);
  EXPECT_FALSE(ParseHttpTarget("host:80")->tls);
  // TLS flags make a target without a scheme https, and refuse http://.
  EXPECT_TRUE(ParseHttpTarget("host:80", /*tls=*/true)->tls);
  EXPECT_TRUE(ParseHttpTarget("https://[::1]:80", /*tls=*/true)->tls);
  const absl::Status plain = ParseHttpTarget("http://host:80", true).status();
  EXPECT_EQ(plain.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(plain.message()), HasSubstr("https://HOST:PORT"));
}

TEST_F(HttpSecurityTest, TlsWithTheCaThatSignedTheServer) {
  FakeHttpServer server(ServerTls());
  const std::string port = std::to_string(server.port());
  for (const std::string& target :
       {"127.0.0.1:" + port, "https://127.0.0.1:" + port,
        "https://localhost:" + port}) {
    HttpClient client(Options(target, Tls("ca.pem")));
    EXPECT_TRUE(client.WaitForConnection(milliseconds(5000)).ok()) << target;
    absl::StatusOr<inference::ModelMetadataResponse> metadata =
        client.ModelMetadata();
    ASSERT_TRUE(metadata.ok()) << target << ": " << metadata.status();
    EXPECT_EQ(metadata->name(), "linear_relu");
    InferInputs inputs;
    inputs.tensors.push_back(
        {"x", {{1, FakeHttpServer::kK}, std::vector<float>(6, -1.0f)}});
    absl::StatusOr<InferResult> result = client.Infer(inputs);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_THAT(result->outputs, SizeIs(1));
  }
  // No token: no Authorization header.
  EXPECT_THAT(server.authorizations(), Each(""));
}

TEST_F(HttpSecurityTest, AServerSignedByAnotherCaIsRefusedAtOnce) {
  FakeHttpServer server(ServerTls());
  HttpClient client(Options(server.target(), Tls("other-ca.pem")));
  const Clock::time_point start = Clock::now();
  const absl::Status connected = client.WaitForConnection(milliseconds(10000));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));  // no waiting
  EXPECT_EQ(connected.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(connected.message()),
              HasSubstr("TLS to " + server.target() +
                        " failed: the server's certificate did not verify: "
                        "unable to get local issuer certificate"));
  const absl::Status call = client.ModelMetadata().status();
  EXPECT_EQ(call.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(call.message()), HasSubstr("did not verify"));
  EXPECT_THAT(server.authorizations(), SizeIs(0));
}

TEST_F(HttpSecurityTest, TheServersCertificateMustNameTheTargetsHost) {
  ASSERT_TRUE(certs_->MakeServerCertificate("elsewhere", "DNS:elsewhere.test"));
  FakeHttpServer server(ServerTls("", "elsewhere"));
  const std::string port = std::to_string(server.port());
  for (const std::string& target : {"127.0.0.1:" + port, "localhost:" + port}) {
    HttpClient client(Options(target, Tls("ca.pem")));
    const absl::Status status = client.WaitForConnection(milliseconds(5000));
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << target;
    EXPECT_THAT(std::string(status.message()), HasSubstr("mismatch")) << target;
  }
}

TEST_F(HttpSecurityTest, TlsToAPlaintextServerSaysSo) {
  FakeHttpServer server;
  HttpClient client(Options(server.target(), Tls("ca.pem")));
  const absl::Status status = client.WaitForConnection(milliseconds(5000));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(status.message()), HasSubstr("TLS handshake failed"));
}

TEST_F(HttpSecurityTest, MutualTlsWantsACertificateTheServersCaSigned) {
  FakeHttpServer server(ServerTls("ca.pem"));
  HttpClient accepted(Options(server.target(), Tls("ca.pem", "client")));
  ASSERT_TRUE(accepted.ModelMetadata().ok());
  for (const ClientSecurity& refused :
       {Tls("ca.pem"), Tls("ca.pem", "other-client")}) {
    HttpClient client(Options(server.target(), refused));
    const absl::Status status = client.ModelMetadata().status();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_THAT(std::string(status.message()),
                HasSubstr("TLS to " + server.target()));
    EXPECT_THAT(std::string(status.message()), HasSubstr("client certificate"));
  }
  EXPECT_THAT(server.authorizations(), SizeIs(1));
}

TEST_F(HttpSecurityTest, TheTokenIsAHeaderOverPlaintextAndTls) {
  for (bool tls : {false, true}) {
    FakeHttpServer::Security server_security =
        tls ? ServerTls() : FakeHttpServer::Security();
    server_security.token = "http-token";
    FakeHttpServer server(server_security);
    ClientSecurity security = tls ? Tls("ca.pem") : ClientSecurity();
    security.token = "http-token";
    HttpClient client(Options(server.target(), security));
    ASSERT_TRUE(client.ModelMetadata().ok()) << "tls " << tls;
    ASSERT_TRUE(client.ModelStatistics().ok()) << "tls " << tls;
    EXPECT_THAT(server.authorizations(), SizeIs(2));
    EXPECT_THAT(server.authorizations(), Each("Bearer http-token"));
  }
}

TEST_F(HttpSecurityTest, AWrongTokenIsUnauthenticatedAndNotRetried) {
  FakeHttpServer::Security server_security;
  server_security.token = "right";
  FakeHttpServer server(server_security);
  for (const char* token : {"wrong", ""}) {
    ClientSecurity security;
    security.token = token;
    ClientOptions options = Options(server.target(), security);
    options.channel.max_attempts = 5;
    HttpClient client(options);
    EXPECT_TRUE(client.WaitForConnection(milliseconds(5000)).ok());  // exempt
    InferInputs inputs;
    inputs.tensors.push_back(
        {"x", {{1, FakeHttpServer::kK}, std::vector<float>(6, 1.0f)}});
    const size_t before = server.authorizations().size();
    const absl::Status status = client.Infer(inputs).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << token;
    EXPECT_THAT(std::string(status.message()),
                HasSubstr("missing or wrong bearer token"));
    EXPECT_EQ(server.authorizations().size(), before + 1);  // one attempt
  }
  EXPECT_EQ(server.infer_calls, 0);
}

TEST_F(HttpSecurityTest, TheLoadGeneratorUsesTlsAndTheTokenOnEveryConnection) {
  FakeHttpServer::Security server_security = ServerTls("ca.pem");
  server_security.token = "load-token";
  FakeHttpServer server(server_security);
  LoadOptions options;
  options.protocol = Protocol::kHttp;
  options.target = server.target();
  options.channel.security = Tls("ca.pem", "client");
  options.channel.security.token = "load-token";
  options.concurrency = {3};
  options.requests = 30;
  options.warmup_s = 0;
  options.timeout = std::chrono::seconds(5);
  options.global_timeout_s = 60;
  const std::vector<StepResult> steps = testing::RunLoad(options);
  ASSERT_EQ(steps.size(), 1u);
  EXPECT_EQ(steps[0].successes, 30);
  EXPECT_EQ(steps[0].errors, 0);
  EXPECT_EQ(server.infer_calls, 30);
  EXPECT_THAT(server.authorizations(), Each("Bearer load-token"));
}

}  // namespace
}  // namespace reluserve
