#include "client/tls_pem.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

namespace reluserve::tls {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

Bio MemoryBio(absl::string_view pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Refuses to decrypt: an encrypted key is no key here, and OpenSSL's
// default would prompt on the terminal.
int NoPassphrase(char*, int, int, void*) { return 0; }

}  // namespace

std::vector<Certificate> ReadCertificates(absl::string_view pem) {
  std::vector<Certificate> certificates;
  Bio bio = MemoryBio(pem);
  if (bio == nullptr) return certificates;
  while (X509* certificate =
             PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr)) {
    certificates.emplace_back(certificate);
  }
  // The end of the text reads as an error (no start line).
  ERR_clear_error();
  return certificates;
}

PrivateKey ReadPrivateKey(absl::string_view pem) {
  Bio bio = MemoryBio(pem);
  if (bio == nullptr) return nullptr;
  PrivateKey key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  return key;
}

CertificateStore StoreOf(absl::string_view pem) {
  std::vector<Certificate> certificates = ReadCertificates(pem);
  if (certificates.empty()) return nullptr;
  CertificateStore store(X509_STORE_new());
  if (store == nullptr) return nullptr;
  for (const Certificate& certificate : certificates) {
    // Takes a reference of its own.
    X509_STORE_add_cert(store.get(), certificate.get());
  }
  ERR_clear_error();  // a certificate listed twice
  return store;
}

std::string TakeFirstError() {
  const unsigned long error = ERR_get_error();
  ERR_clear_error();
  if (error == 0) return "";
  if (const char* reason = ERR_reason_error_string(error)) return reason;
  char text[256];
  ERR_error_string_n(error, text, sizeof(text));
  return text;
}

std::string VerifyResultText(long result) {
  return X509_verify_cert_error_string(result);
}

}  // namespace reluserve::tls
