// OpenSSL objects from PEM text held in memory, for the client's TLS: what
// LoadClientSecurity checks the files with, and what HttpConnection hands
// cpp-httplib. Internal to the client library (OpenSSL headers).

#ifndef RELUSERVE_CLIENT_TLS_PEM_H_
#define RELUSERVE_CLIENT_TLS_PEM_H_

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace reluserve::tls {

struct X509Free {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct StoreFree {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
using Certificate = std::unique_ptr<X509, X509Free>;
using PrivateKey = std::unique_ptr<EVP_PKEY, KeyFree>;
using CertificateStore = std::unique_ptr<X509_STORE, StoreFree>;

// Every certificate in `pem`, in order; empty when there is none.
std::vector<Certificate> ReadCertificates(absl::string_view pem);

// The first private key in `pem`; null when there is none or it is
// encrypted (no passphrase is ever asked for).
PrivateKey ReadPrivateKey(absl::string_view pem);

// A store trusting every certificate in `pem`; null when there is none.
CertificateStore StoreOf(absl::string_view pem);

// The reason of the calling thread's earliest queued OpenSSL error (e.g.
// "tlsv13 alert certificate required"; later ones tend to follow from it),
// empty when there is none; clears the thread's error queue.
std::string TakeFirstError();

// What X509_verify_cert_error_string says of a verification result.
std::string VerifyResultText(long result);

}  // namespace reluserve::tls

#endif  // RELUSERVE_CLIENT_TLS_PEM_H_
