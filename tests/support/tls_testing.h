#ifndef RELUSERVE_TESTS_SUPPORT_TLS_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_TLS_TESTING_H_

// TLS and token material for the client's security tests: throwaway
// certificates made by make_test_certs.sh in a temporary directory, client
// and gRPC server credentials from them, and a server interceptor that records
// the authorization metadata of every call. A test using TestCertificates
// defines RELUSERVE_SOURCE_DIR (the repository root) to find the script.

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "client/client_security.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/server_interceptor.h"
#include "tests/support/loopback_server.h"

namespace reluserve::testing {

// ca.pem, server.pem/.key (SAN 127.0.0.1, ::1, localhost), client.pem/.key,
// and other-ca.pem, other-server.pem/.key, other-client.pem/.key from a
// second CA. Made once per object; removed with it.
class TestCertificates {
 public:
  TestCertificates() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "reluserve-tls-XXXXXX")
            .string();
    if (mkdtemp(pattern.data()) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = pattern;
#ifdef RELUSERVE_SOURCE_DIR
    const std::string command = std::string("bash '") + RELUSERVE_SOURCE_DIR +
                                "/tests/support/make_test_certs.sh' '" +
                                dir_.string() + "'";
    if (std::system(command.c_str()) != 0) error_ = "failed: " + command;
#else
    error_ = "RELUSERVE_SOURCE_DIR is not defined for this test";
#endif
  }
  ~TestCertificates() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  TestCertificates(const TestCertificates&) = delete;
  TestCertificates& operator=(const TestCertificates&) = delete;

  // Empty when every file was made.
  const std::string& error() const { return error_; }
  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }
  std::string Read(const std::string& name) const {
    std::ifstream in(Path(name), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  // TLS trusting `ca`, presenting `client`.pem/.key unless empty.
  ClientSecurity ClientTls(const std::string& ca,
                           const std::string& client = "") const {
    ClientSecurity security;
    security.tls = true;
    security.ca_pem = Read(ca);
    if (!client.empty()) {
      security.cert_pem = Read(client + ".pem");
      security.key_pem = Read(client + ".key");
    }
    return security;
  }

  // A server certificate `name`.pem/.key signed by ca.pem whose only name
  // is `san` (e.g. "DNS:elsewhere.test"); false when openssl failed.
  bool MakeServerCertificate(const std::string& name,
                             const std::string& san) const {
    const std::string base = "'" + Path(name) + "'";
    const std::string command =
        "openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256"
        " -keyout " +
        base + ".key -out " + base + ".csr -subj /CN=" + name +
        " 2>/dev/null && printf 'subjectAltName=%s\\nextendedKeyUsage="
        "serverAuth\\n' '" +
        san + "' >" + base +
        ".ext && openssl x509 -req"
        " -in " +
        base + ".csr -CA '" + Path("ca.pem") + "' -CAkey '" + Path("ca.key") +
        "' -CAcreateserial -out " + base +
        ".pem -days 2"
        " -extfile " +
        base + ".ext 2>/dev/null";
    return std::system(command.c_str()) == 0;
  }

  // Writes `text` to `name` in the directory; its path.
  std::string Write(const std::string& name, const std::string& text) const {
    std::ofstream(Path(name), std::ios::binary) << text;
    return Path(name);
  }

 private:
  std::filesystem::path dir_;
  std::string error_;
};

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

#endif  // RELUSERVE_TESTS_SUPPORT_TLS_TESTING_H_
