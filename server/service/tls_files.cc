#include "server/service/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace reluserve {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     const char* flag) {
  std::ifstream file(path, std::ios::binary);
  if (!file.is_open()) {
    return absl::FailedPreconditionError(
        absl::StrCat(flag, " ", path, ": cannot open the file"));
  }
  std::stringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    return absl::FailedPreconditionError(
        absl::StrCat(flag, " ", path, ": cannot read the file"));
  }
  return text.str();
}

Bio MemoryBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// OpenSSL's reason for the last failure, and the error queue cleared.
std::string OpenSslReason() {
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  const char* reason = error == 0 ? nullptr : ERR_reason_error_string(error);
  return reason == nullptr ? "not PEM" : reason;
}

absl::Status NotPem(const char* flag, const std::string& path,
                    const char* expected) {
  return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": expected ",
                                                 expected, " in PEM form (",
                                                 OpenSslReason(), ")"));
}

}  // namespace

absl::StatusOr<TlsPems> ReadTlsFiles(const TlsFiles& files) {
  TlsPems pems;
  absl::StatusOr<std::string> cert = ReadFile(files.cert_file, "--tls-cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(files.key_file, "--tls-key");
  if (!key.ok()) return key.status();
  pems.cert_chain = *std::move(cert);
  pems.private_key = *std::move(key);

  Bio cert_bio = MemoryBio(pems.cert_chain);
  std::unique_ptr<X509, X509Free> leaf(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (leaf == nullptr) {
    return NotPem("--tls-cert", files.cert_file, "a certificate");
  }
  Bio key_bio = MemoryBio(pems.private_key);
  std::unique_ptr<EVP_PKEY, KeyFree> private_key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (private_key == nullptr) {
    return NotPem("--tls-key", files.key_file, "an unencrypted private key");
  }
  if (X509_check_private_key(leaf.get(), private_key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-key ", files.key_file,
                     " is not the key of --tls-cert ", files.cert_file));
  }

  if (files.mutual()) {
    absl::StatusOr<std::string> ca =
        ReadFile(files.client_ca_file, "--tls-client-ca");
    if (!ca.ok()) return ca.status();
    pems.client_ca = *std::move(ca);
    Bio ca_bio = MemoryBio(pems.client_ca);
    std::unique_ptr<X509, X509Free> first(
        PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
    if (first == nullptr) {
      return NotPem("--tls-client-ca", files.client_ca_file,
                    "one or more CA certificates");
    }
  }
  return pems;
}

}  // namespace reluserve
