// The gRPC side of the client's security against in-process servers on
// 127.0.0.1 (tests/support/client_tls_testing.h): TLS with the right and a
// wrong CA, mutual TLS with a client certificate, none, or one from another CA,
// and the bearer token on every call (typed Client, retries, the load
// generator), over plaintext and TLS.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "client/channel.h"
#include "client/client.h"
#include "client/client_security.h"
#include "client/load_generator.h"
#include "gmock/gmock.h"
#include "grpc_service.grpc.pb.h"
#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "tests/support/client_tls_testing.h"
#include "tests/support/load_testing.h"

namespace reluserve {
namespace {

using std::chrono::milliseconds;
using ::testing::AnyOf;
using testing::AuthorizationLog;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kMetadata[] = "/inference.GRPCInferenceService/ModelMetadata";
constexpr char kInfer[] = "/inference.GRPCInferenceService/ModelInfer";

class GrpcSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs_ = new testing::TestCertificates(); }
  static void TearDownTestSuite() { delete certs_; }
  void SetUp() override { ASSERT_EQ(certs_->error(), ""); }
  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(2));
    }
  }

  // Serves service_ with `credentials` (null: plaintext), log_ recording.
  void Start(std::shared_ptr<grpc::ServerCredentials> credentials) {
    server_ = testing::StartOnLoopback(&service_, &port_, credentials,
                                       log_.Interceptors());
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  static ClientSecurity Tls(const std::string& ca,
                            const std::string& client = "") {
    return testing::ClientTls(*certs_, ca, client);
  }

  ClientOptions Options(const ClientSecurity& security,
                        const std::string& host = "127.0.0.1") const {
    ClientOptions options;
    options.target = host + ":" + std::to_string(port_);
    options.channel.security = security;
    options.deadline = std::chrono::seconds(5);
    return options;
  }

  // ModelMetadata through a typed Client: its status.
  absl::Status Call(const ClientOptions& options) const {
    Client client(options);
    return client.ModelMetadata().status();
  }

  static testing::TestCertificates* certs_;
  testing::FakeService service_;
  AuthorizationLog log_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

testing::TestCertificates* GrpcSecurityTest::certs_ = nullptr;

TEST_F(GrpcSecurityTest, TlsWithTheCaThatSignedTheServer) {
  Start(testing::GrpcServerTls(*certs_));
  for (const char* host : {"127.0.0.1", "localhost"}) {
    Client client(Options(Tls("ca.pem"), host));
    EXPECT_TRUE(client.WaitForConnection(milliseconds(5000)).ok()) << host;
    absl::StatusOr<inference::ModelMetadataResponse> metadata =
        client.ModelMetadata();
    ASSERT_TRUE(metadata.ok()) << host << ": " << metadata.status();
    EXPECT_EQ(metadata->name(), "linear_relu");
  }
  ASSERT_EQ(log_.calls().size(), 2u);
  EXPECT_THAT(log_.calls()[0].values, IsEmpty());  // no token, no metadata
}

TEST_F(GrpcSecurityTest, AnAddressListSharingOneHostIsCheckedAgainstIt) {
  Start(testing::GrpcServerTls(*certs_));
  ClientOptions options = Options(Tls("ca.pem"));
  const std::string address = options.target;
  options.target = "ipv4:" + address + "," + address;
  EXPECT_EQ(SharedListHost(options.target), "127.0.0.1");
  EXPECT_TRUE(ValidateTlsTarget(options.channel, options.target).ok());
  const absl::Status status = Call(options);
  EXPECT_TRUE(status.ok()) << status;
  // Hosts that differ leave no one name to check.
  const std::string mixed = "ipv4:" + address + ",127.0.0.2:1";
  EXPECT_EQ(SharedListHost(mixed), "");
  EXPECT_EQ(SharedListHost("ipv6:[::1]:1,[::1]:2"), "::1");
  EXPECT_EQ(SharedListHost(address), "");
  const absl::Status refused = ValidateTlsTarget(options.channel, mixed);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("dns:///NAME:PORT"));
  EXPECT_TRUE(ValidateTlsTarget(ChannelOptions(), mixed).ok());  // plaintext
}

TEST_F(GrpcSecurityTest, AServerSignedByAnotherCaIsRefused) {
  Start(testing::GrpcServerTls(*certs_));
  Client client(Options(Tls("other-ca.pem")));
  const absl::Status connected = client.WaitForConnection(milliseconds(2000));
  EXPECT_EQ(connected.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(connected.message()), HasSubstr("TLS"));
  EXPECT_THAT(std::string(connected.message()),
              HasSubstr("certificate verify failed"));
  const absl::Status call = client.ModelMetadata().status();
  EXPECT_EQ(call.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(call.message()),
              HasSubstr("certificate verify failed"));
  EXPECT_THAT(log_.calls(), IsEmpty());
}

TEST_F(GrpcSecurityTest, TheServersCertificateMustNameTheTargetsHost) {
  ASSERT_TRUE(certs_->MakeServerCertificate("elsewhere", "DNS:elsewhere.test"));
  Start(testing::GrpcServerTls(*certs_, "elsewhere"));
  const absl::Status status = Call(Options(Tls("ca.pem")));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(log_.calls(), IsEmpty());
}

TEST_F(GrpcSecurityTest, PlaintextClientGetsNoAnswerFromATlsServer) {
  Start(testing::GrpcServerTls(*certs_));
  EXPECT_EQ(Call(Options({})).code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(log_.calls(), IsEmpty());
}

TEST_F(GrpcSecurityTest, MutualTlsWantsACertificateTheServersCaSigned) {
  Start(testing::GrpcServerTls(*certs_, "server", "ca.pem"));
  EXPECT_TRUE(Call(Options(Tls("ca.pem", "client"))).ok());
  for (const ClientSecurity& refused :
       {Tls("ca.pem"), Tls("ca.pem", "other-client")}) {
    const absl::Status status = Call(Options(refused));
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  }
  EXPECT_EQ(log_.calls().size(), 1u);
}

TEST_F(GrpcSecurityTest, TheTokenGoesOnEveryCallOverPlaintext) {
  Start(nullptr);
  ClientSecurity security;
  security.token = "plain-token";
  Client client(Options(security));
  ASSERT_TRUE(client.ModelMetadata().ok());
  ASSERT_TRUE(client.ModelStatistics().ok());
  const std::vector<AuthorizationLog::Call> calls = log_.calls();
  ASSERT_EQ(calls.size(), 2u);
  for (const AuthorizationLog::Call& call : calls) {
    EXPECT_THAT(call.values, ElementsAre("Bearer plain-token")) << call.method;
  }
  EXPECT_EQ(calls[0].method, kMetadata);
}

TEST_F(GrpcSecurityTest, TheTokenGoesOnEveryCallOverMutualTls) {
  Start(testing::GrpcServerTls(*certs_, "server", "ca.pem"));
  ClientSecurity security = Tls("ca.pem", "client");
  security.token = "tls-token";
  ASSERT_TRUE(Call(Options(security)).ok());
  ASSERT_EQ(log_.calls().size(), 1u);
  EXPECT_THAT(log_.calls()[0].values, ElementsAre("Bearer tls-token"));
}

TEST_F(GrpcSecurityTest, EveryRetriedAttemptCarriesTheToken) {
  Start(nullptr);
  service_.unavailable_first = 2;
  ChannelOptions options;
  options.security.token = "retried";
  auto stub = inference::GRPCInferenceService::NewStub(
      CreateClientChannel("127.0.0.1:" + std::to_string(port_), options));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  inference::ModelInferRequest request;
  request.set_model_name("linear_relu");
  request.add_inputs()->add_shape(1);  // all the fake reads
  inference::ModelInferResponse response;
  EXPECT_TRUE(stub->ModelInfer(&context, request, &response).ok());
  const std::vector<AuthorizationLog::Call> calls = log_.calls();
  ASSERT_EQ(calls.size(), 3u);
  for (const AuthorizationLog::Call& call : calls) {
    EXPECT_EQ(call.method, kInfer);
    EXPECT_THAT(call.values, ElementsAre("Bearer retried"));
  }
}

TEST_F(GrpcSecurityTest, TheLoadGeneratorUsesTlsAndTheTokenOnEveryChannel) {
  Start(testing::GrpcServerTls(*certs_, "server", "ca.pem"));
  for (bool stream : {false, true}) {
    LoadOptions options;
    options.target = "127.0.0.1:" + std::to_string(port_);
    options.channel.security = Tls("ca.pem", "client");
    options.channel.security.token = "load-token";
    options.channels = 2;
    options.stream = stream;
    options.concurrency = {2};
    options.requests = 20;
    options.warmup_s = 0;
    options.timeout = std::chrono::seconds(5);
    options.global_timeout_s = 60;
    const std::vector<StepResult> steps = testing::RunLoad(options);
    ASSERT_EQ(steps.size(), 1u);
    EXPECT_EQ(steps[0].successes, 20) << "stream " << stream;
  }
  const std::vector<AuthorizationLog::Call> calls = log_.calls();
  ASSERT_FALSE(calls.empty());
  int infer_calls = 0;
  for (const AuthorizationLog::Call& call : calls) {
    EXPECT_THAT(call.values, ElementsAre("Bearer load-token")) << call.method;
    if (call.method == kInfer) ++infer_calls;
  }
  EXPECT_EQ(infer_calls, 20);  // the streamed step's requests share streams
  EXPECT_THAT(calls.back().method,
              AnyOf(HasSubstr("ModelStreamInfer"), HasSubstr("Statistics")));
}

}  // namespace
}  // namespace reluserve
