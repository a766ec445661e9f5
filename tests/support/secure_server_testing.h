#ifndef RELUSERVE_TESTS_SUPPORT_SECURE_SERVER_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_SECURE_SERVER_TESTING_H_

// A Server with TLS and/or tokens on all three listeners, and the clients
// that reach it over gRPC, REST and /metrics with or without a certificate
// or a token, for the tests of the server's security.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <climits>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "grpc_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "server/core/weights.h"
#include "server/service/server.h"
#include "tests/support/model_testing.h"
#include "tests/support/service_testing.h"
#include "tests/support/tls_testing.h"

namespace reluserve::testing {

// How a client presents itself: which CA it trusts (empty: plaintext) and
// which certificate pair it shows (empty: none). Names are files of
// TestCertificates.
struct ClientIdentity {
  std::string trusted_ca;
  std::string cert;
  std::string key;
};
inline ClientIdentity Plaintext() { return {}; }
inline ClientIdentity TrustingCa() { return {"ca.pem", "", ""}; }
inline ClientIdentity WithClientCert() {
  return {"ca.pem", "client.pem", "client.key"};
}

inline std::unique_ptr<Server> StartSecureServer(
    const std::function<void(Server::Options&)>& configure) {
  Server::Options options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.http_port = 0;
  options.metrics_port = 0;
  configure(options);
  LinearWeights weights = MakeDefaultWeights(kIn, kOut, 5);
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::Start(options, SingleLayerModel(weights));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

inline Server::Options& UseTls(Server::Options& options, bool mutual) {
  options.tls.cert_file = SharedTestCertificates().Path("server.pem");
  options.tls.key_file = SharedTestCertificates().Path("server.key");
  if (mutual)
    options.tls.client_ca_file = SharedTestCertificates().Path("ca.pem");
  return options;
}

inline std::unique_ptr<inference::GRPCInferenceService::Stub> GrpcStub(
    const Server& server, const ClientIdentity& identity) {
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (!identity.trusted_ca.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = SharedTestCertificates().Read(identity.trusted_ca);
    if (!identity.cert.empty()) {
      ssl.pem_cert_chain = SharedTestCertificates().Read(identity.cert);
      ssl.pem_private_key = SharedTestCertificates().Read(identity.key);
    }
    credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(INT_MAX);
  // A fresh connection per stub: one refused handshake must not be reused.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return inference::GRPCInferenceService::NewStub(
      grpc::CreateCustomChannel(server.address(), credentials, args));
}

// A context with a short deadline, and the token when one is given.
inline std::unique_ptr<grpc::ClientContext> CallContext(
    const std::string& token = "") {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
  return context;
}

inline grpc::Status ServerMetadata(inference::GRPCInferenceService::Stub& stub,
                                   const std::string& token = "") {
  inference::ServerMetadataRequest request;
  inference::ServerMetadataResponse response;
  return stub.ServerMetadata(CallContext(token).get(), request, &response);
}

// An HTTP client for `port`: plain, or HTTPS as `identity` says.
inline std::unique_ptr<httplib::Client> HttpClientFor(
    int port, const ClientIdentity& identity) {
  std::unique_ptr<httplib::Client> client;
  if (identity.trusted_ca.empty()) {
    client = std::make_unique<httplib::Client>("127.0.0.1", port);
  } else {
    client = std::make_unique<httplib::Client>(
        "https://127.0.0.1:" + std::to_string(port),
        identity.cert.empty() ? ""
                              : SharedTestCertificates().Path(identity.cert),
        identity.key.empty() ? ""
                             : SharedTestCertificates().Path(identity.key));
    client->set_ca_cert_path(
        SharedTestCertificates().Path(identity.trusted_ca));
    client->enable_server_certificate_verification(true);
  }
  client->set_connection_timeout(std::chrono::seconds(5));
  client->set_read_timeout(std::chrono::seconds(10));
  return client;
}

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_SECURE_SERVER_TESTING_H_
