// What a client presents to a server that wants TLS, mutual TLS or a bearer
// token: the files the flags name (--tls-ca, --tls-cert, --tls-key,
// --token-file), read and checked once into ClientSecurity, which every gRPC
// channel (CreateClientChannel) and HTTP connection (HttpConnection) of the
// client library, reluserve-client and reluserve-load then uses.

#ifndef RELUSERVE_CLIENT_CLIENT_SECURITY_H_
#define RELUSERVE_CLIENT_CLIENT_SECURITY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace reluserve {

// The files, as the flags give them; empty: not given.
struct SecurityFiles {
  std::string tls_ca;    // --tls-ca: PEM CA certificates to trust
  std::string tls_cert;  // --tls-cert: PEM client certificate (chain)
  std::string tls_key;   // --tls-key: PEM private key of tls_cert
  std::string token;     // --token-file: the bearer token

  bool tls() const { return !tls_ca.empty() || !tls_cert.empty(); }
};

// The material itself. Default: plaintext, no token (what a client without
// any security flag does, unchanged).
struct ClientSecurity {
  // TLS on. With `ca_pem` empty, the server's certificate is checked against
  // the system's roots (gRPC's default roots; OpenSSL's default paths).
  bool tls = false;
  std::string ca_pem;
  // A client certificate and its key, both or neither (mutual TLS).
  std::string cert_pem;
  std::string key_pem;
  // Sent as "authorization: Bearer <token>" on every call when not empty.
  std::string token;
};

// What is wrong with the combination of flags (a usage error), or empty:
// --tls-cert and --tls-key go together; --tls-key needs --tls-cert.
std::string SecurityFlagsProblem(const SecurityFiles& files);

// Reads every file `files` names. A file that cannot be read, holds no PEM
// certificate (CA, certificate) or private key, a key that does not match
// the certificate, or a token file without a token: an error naming the flag
// and the path (InvalidArgument for SecurityFlagsProblem's cases,
// FailedPrecondition otherwise). Never puts a secret in a message.
absl::StatusOr<ClientSecurity> LoadClientSecurity(const SecurityFiles& files);

// The token in the text of a token file: its first line that is neither
// empty nor a `#` comment, without surrounding whitespace; empty when there
// is none. Lines may end in "\n" or "\r\n".
std::string TokenFromFile(absl::string_view text);

// The value of the `authorization` metadata/header for `token`.
std::string BearerValue(absl::string_view token);

// InvalidArgument when a certificate comes without its key or the other way
// round.
absl::Status ValidateClientSecurity(const ClientSecurity& security);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_CLIENT_SECURITY_H_
