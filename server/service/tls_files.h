#ifndef RELUSERVE_SERVER_SERVICE_TLS_FILES_H_
#define RELUSERVE_SERVER_SERVICE_TLS_FILES_H_

#include <string>

#include "absl/status/statusor.h"

namespace reluserve {

// --tls-cert, --tls-key and --tls-client-ca: PEM files that put TLS (and,
// with a client CA, mutual TLS) on every listener.
struct TlsFiles {
  std::string cert_file;       // the server's certificate chain
  std::string key_file;        // its private key
  std::string client_ca_file;  // empty: no client certificate asked for

  bool enabled() const { return !cert_file.empty(); }
  bool mutual() const { return !client_ca_file.empty(); }
};

// The files' contents, checked at start-up rather than at the first
// handshake: each file reads as PEM, the key belongs to the certificate, and
// the client CA file holds at least one certificate.
struct TlsPems {
  std::string cert_chain;
  std::string private_key;
  std::string client_ca;  // empty without mutual TLS
};

// Fails naming the flag and the file, and what is wrong with it. Requires
// files.enabled().
absl::StatusOr<TlsPems> ReadTlsFiles(const TlsFiles& files);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_TLS_FILES_H_
