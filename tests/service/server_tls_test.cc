// TLS and mutual TLS on all three listeners of a real Server: the right
// clients get through; a plaintext client, a client trusting another CA, a
// client without a certificate and one with another CA's certificate are
// refused, and the server goes on serving the right ones.

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/secure_server_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::ClientIdentity;
using ::reluserve::testing::GrpcStub;
using ::reluserve::testing::HttpClientFor;
using ::reluserve::testing::Plaintext;
using ::reluserve::testing::ServerMetadata;
using ::reluserve::testing::SharedTestCertificates;
using ::reluserve::testing::StartSecureServer;
using ::reluserve::testing::TrustingCa;
using ::reluserve::testing::UseTls;
using ::reluserve::testing::WithClientCert;

const ClientIdentity kTrustingOtherCa{"other-ca.pem", "client.pem",
                                      "client.key"};
const ClientIdentity kOtherCasClientCert{"ca.pem", "other-client.pem",
                                         "other-client.key"};

// Every listener answers `identity` as `reachable` says.
void ExpectListeners(const Server& server, const ClientIdentity& identity,
                     bool reachable) {
  const grpc::Status grpc_status = ServerMetadata(*GrpcStub(server, identity));
  if (reachable) {
    EXPECT_TRUE(grpc_status.ok()) << grpc_status.error_message();
  } else {
    // Refused in the handshake: no call ever reaches the server.
    EXPECT_EQ(grpc_status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << grpc_status.error_message();
  }
  for (const auto& [port, path] :
       {std::pair{server.http_port(), "/v2/health/ready"},
        std::pair{server.metrics_port(), "/metrics"}}) {
    httplib::Result answer = HttpClientFor(port, identity)->Get(path);
    if (reachable) {
      ASSERT_TRUE(answer) << path << ": " << httplib::to_string(answer.error());
      EXPECT_EQ(answer->status, 200) << path;
    } else {
      EXPECT_FALSE(answer) << path << " answered " << answer->status;
    }
  }
}

TEST(ServerTlsTest, ServesClientsThatTrustItsCaAndRefusesTheOthers) {
  std::unique_ptr<Server> server = StartSecureServer(
      [](Server::Options& options) { UseTls(options, /*mutual=*/false); });
  ASSERT_NE(server, nullptr);
  ExpectListeners(*server, TrustingCa(), true);
  // A client certificate is not asked for, so one shown does no harm.
  ExpectListeners(*server, WithClientCert(), true);
  ExpectListeners(*server, Plaintext(), false);
  ExpectListeners(*server, kTrustingOtherCa, false);
  ExpectListeners(*server, TrustingCa(), true);
}

TEST(ServerTlsTest, MutualTlsRefusesClientsWithoutTheCasCertificate) {
  std::unique_ptr<Server> server = StartSecureServer(
      [](Server::Options& options) { UseTls(options, /*mutual=*/true); });
  ASSERT_NE(server, nullptr);
  ExpectListeners(*server, WithClientCert(), true);
  ExpectListeners(*server, TrustingCa(), false);
  ExpectListeners(*server, kOtherCasClientCert, false);
  ExpectListeners(*server, Plaintext(), false);
  ExpectListeners(*server, kTrustingOtherCa, false);
  ExpectListeners(*server, WithClientCert(), true);
}

TEST(ServerTlsTest, InferenceOverTlsGivesTheSameNumbersAsPlaintext) {
  std::unique_ptr<Server> plain = StartSecureServer([](Server::Options&) {});
  std::unique_ptr<Server> tls = StartSecureServer(
      [](Server::Options& options) { UseTls(options, /*mutual=*/true); });
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(tls, nullptr);
  inference::ModelInferRequest request;
  request.set_model_name("linear_relu");
  testing::AddInput(request, "x", {3, testing::kIn},
                    testing::RandomValues(3 * testing::kIn, 7));
  inference::ModelInferResponse from_plain, from_tls;
  ASSERT_TRUE(
      GrpcStub(*plain, Plaintext())
          ->ModelInfer(testing::CallContext().get(), request, &from_plain)
          .ok());
  const grpc::Status status =
      GrpcStub(*tls, WithClientCert())
          ->ModelInfer(testing::CallContext().get(), request, &from_tls);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(from_tls.raw_output_contents_size(), 1);
  EXPECT_EQ(from_tls.raw_output_contents(0), from_plain.raw_output_contents(0));
}

TEST(ServerTlsTest, StartFailsNamingAKeyThatIsNotTheCertificates) {
  Server::Options options;
  options.port = 0;
  options.tls.cert_file = SharedTestCertificates().Path("server.pem");
  options.tls.key_file = SharedTestCertificates().Path("other-server.key");
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(
      options, testing::SingleLayerModel(MakeDefaultWeights(4, 2, 1)));
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find(options.tls.key_file),
            std::string::npos)
      << server.status();
  EXPECT_NE(server.status().message().find("is not the key of --tls-cert"),
            std::string::npos)
      << server.status();
}

}  // namespace
}  // namespace reluserve
