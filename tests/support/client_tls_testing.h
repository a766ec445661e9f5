#ifndef RELUSERVE_TESTS_SUPPORT_CLIENT_TLS_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_CLIENT_TLS_TESTING_H_

// The client's security tests: client and gRPC server credentials from the
// test certificates, and a server interceptor that records the
// authorization metadata of every call.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/client_security.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/server_interceptor.h"
#include "tests/support/loopback_server.h"
#include "tests/support/tls_testing.h"

namespace reluserve::testing {

// TLS trusting `ca`, presenting `client`.pem/.key unless empty.
inline ClientSecurity ClientTls(const TestCertificates& certs,
                                const std::string& ca,
                                const std::string& client = "") {
  ClientSecurity security;
  security.tls = true;
  security.ca_pem = certs.Read(ca);
  if (!client.empty()) {
    security.cert_pem = certs.Read(client + ".pem");
    security.key_pem = certs.Read(client + ".key");
  }
  return security;
}

// A gRPC server certificate `name`.pem/.key; with `client_ca`, mutual TLS:
// a client must present a certificate that CA signed.
inline std::shared_ptr<grpc::ServerCredentials> GrpcServerTls(
    const TestCertificates& certs, const std::string& name = "server",
    const std::string& client_ca = "") {
  grpc::SslServerCredentialsOptions options(
      client_ca.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_key_cert_pairs.push_back(
      {certs.Read(name + ".key"), certs.Read(name + ".pem")});
  if (!client_ca.empty()) options.pem_root_certs = certs.Read(client_ca);
  return grpc::SslServerCredentials(options);
}

// Every call a server received, with the values of its authorization
// metadata. Must outlive the server its Interceptors() went to.
class AuthorizationLog {
 public:
  struct Call {
    std::string method;
    std::vector<std::string> values;
  };

  std::vector<Call> calls() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls_;
  }

  ServerInterceptors Interceptors() {
    ServerInterceptors interceptors;
    interceptors.push_back(std::make_unique<Factory>(this));
    return interceptors;
  }

 private:
  class Recorder final : public grpc::experimental::Interceptor {
   public:
    Recorder(AuthorizationLog* log, std::string method)
        : log_(log), method_(std::move(method)) {}
    void Intercept(grpc::experimental::InterceptorBatchMethods* methods) final {
      if (methods->QueryInterceptionHookPoint(
              grpc::experimental::InterceptionHookPoints::
                  POST_RECV_INITIAL_METADATA)) {
        Call call{method_, {}};
        for (const auto& [key, value] : *methods->GetRecvInitialMetadata()) {
          if (key == "authorization") {
            call.values.emplace_back(value.data(), value.size());
          }
        }
        std::lock_guard<std::mutex> lock(log_->mutex_);
        log_->calls_.push_back(std::move(call));
      }
      methods->Proceed();
    }

   private:
    AuthorizationLog* log_;
    std::string method_;
  };

  class Factory final
      : public grpc::experimental::ServerInterceptorFactoryInterface {
   public:
    explicit Factory(AuthorizationLog* log) : log_(log) {}
    grpc::experimental::Interceptor* CreateServerInterceptor(
        grpc::experimental::ServerRpcInfo* info) final {
      return new Recorder(log_, info->method());
    }

   private:
    AuthorizationLog* log_;
  };

  mutable std::mutex mutex_;
  std::vector<Call> calls_;
};

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_CLIENT_TLS_TESTING_H_
