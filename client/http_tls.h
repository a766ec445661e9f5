// The TLS side of HttpConnection: a cpp-httplib SSLClient set up from a
// ClientSecurity (OpenSSL checks the server's certificate and name), and
// what a failed TLS request says. Internal to the client library.

#ifndef RELUSERVE_CLIENT_HTTP_TLS_H_
#define RELUSERVE_CLIENT_HTTP_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/client_security.h"
#include "httplib.h"

namespace reluserve {

// An SSLClient to host:port trusting security.ca_pem (the system's roots
// when empty) and nothing else, which refuses a server certificate that
// does not name `host` (its IP address, or DNS name), presenting
// security's client certificate when it has one. InvalidArgument when the
// PEM text holds no certificate or key.
absl::StatusOr<std::unique_ptr<httplib::ClientImpl>> MakeHttpsClient(
    const std::string& host, int port, const ClientSecurity& security);

// Call before each request on the thread that sends it: forgets what the
// last TLS failure on this thread was.
void ClearTlsFailure();

struct TlsFailure {
  std::string why;  // empty: TLS is not known to have failed
  // OpenSSL said why (a certificate that did not verify, an alert): trying
  // again will not help.
  bool definite = false;
};

// Why a request of this thread that failed with `error` failed in TLS,
// e.g. "the server's certificate did not verify: unable to get local issuer
// certificate".
TlsFailure TlsFailureOf(httplib::Error error);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_HTTP_TLS_H_
