#include "client/http_tls.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/tls_pem.h"

namespace reluserve {
namespace {

// The first verification error of this thread's latest handshake: the
// blocking client handshakes on the thread that sends the request.
thread_local int verify_error = X509_V_OK;

int RecordVerifyError(int ok, X509_STORE_CTX* context) {
  if (!ok && verify_error == X509_V_OK) {
    verify_error = X509_STORE_CTX_get_error(context);
  }
  return ok;
}

bool IsIpAddress(const std::string& host) {
  unsigned char address[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), address) == 1 ||
         inet_pton(AF_INET6, host.c_str(), address) == 1;
}

}  // namespace

absl::StatusOr<std::unique_ptr<httplib::ClientImpl>> MakeHttpsClient(
    const std::string& host, int port, const ClientSecurity& security) {
  if (absl::Status valid = ValidateClientSecurity(security); !valid.ok()) {
    return valid;
  }
  std::vector<tls::Certificate> chain;
  tls::PrivateKey key;
  if (!security.cert_pem.empty()) {
    chain = tls::ReadCertificates(security.cert_pem);
    key = tls::ReadPrivateKey(security.key_pem);
    if (chain.empty() || key == nullptr) {
      return absl::InvalidArgumentError(
          "the client certificate or key is not PEM text");
    }
  }
  tls::CertificateStore store;
  if (!security.ca_pem.empty()) {
    store = tls::StoreOf(security.ca_pem);
    if (store == nullptr) {
      return absl::InvalidArgumentError("the CA certificates are not PEM text");
    }
  }
  auto client = std::make_unique<httplib::SSLClient>(
      host, port, chain.empty() ? nullptr : chain.front().get(), key.get());
  SSL_CTX* context = client->ssl_context();
  if (context == nullptr) {
    tls::TakeFirstError();
    return absl::InvalidArgumentError(
        "the client certificate and key were refused by OpenSSL");
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    SSL_CTX_add1_chain_cert(context, chain[i].get());
  }
  // cpp-httplib's own check would add the system's roots to any store, and
  // its name check is looser than OpenSSL's: OpenSSL verifies instead.
  client->enable_server_certificate_verification(false);
  if (store != nullptr) {
    SSL_CTX_set_cert_store(context, store.release());
  } else {
    SSL_CTX_set_default_verify_paths(context);
  }
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER, RecordVerifyError);
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(context);
  if (IsIpAddress(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  }
  tls::TakeFirstError();
  return std::unique_ptr<httplib::ClientImpl>(std::move(client));
}

void ClearTlsFailure() {
  verify_error = X509_V_OK;
  tls::TakeFirstError();
}

TlsFailure TlsFailureOf(httplib::Error error) {
  const std::string reason = tls::TakeFirstError();
  if (verify_error != X509_V_OK) {
    return {absl::StrCat("the server's certificate did not verify: ",
                         tls::VerifyResultText(verify_error),
                         " (is --tls-ca the CA that signed it, and does it "
                         "name the target's host?)"),
            true};
  }
  if (error == httplib::Error::SSLConnection) {
    return {
        absl::StrCat("TLS handshake failed", reason.empty() ? "" : ": ", reason,
                     reason == "wrong version number"
                         ? " (does the server speak plaintext there?)"
                         : ""),
        true};
  }
  // TLS 1.3 refuses a client certificate after the client's side of the
  // handshake: the server's alert arrives when the answer is read, or the
  // request's write finds the connection closed.
  constexpr char kCertificateHint[] =
      " (does the server want a client certificate, --tls-cert and "
      "--tls-key, signed by a CA it trusts?)";
  if (!reason.empty()) {
    const bool about_certificate = absl::StrContains(reason, "certificate") ||
                                   absl::StrContains(reason, "unknown ca");
    return {absl::StrCat("the server ended the TLS connection: ", reason,
                         about_certificate ? kCertificateHint : ""),
            true};
  }
  if (error == httplib::Error::Read || error == httplib::Error::Write) {
    return {absl::StrCat("the server closed the TLS connection (",
                         httplib::to_string(error), ")", kCertificateHint),
            false};
  }
  return {};
}

}  // namespace reluserve
