#ifndef RELUSERVE_SERVER_SERVICE_GRPC_SECURITY_H_
#define RELUSERVE_SERVER_SERVICE_GRPC_SECURITY_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>

#include "absl/strings/string_view.h"
#include "server/service/bearer_tokens.h"
#include "server/service/tls_files.h"

namespace reluserve {

// Whether a gRPC method (its :path, "/package.Service/Method") may be called
// without a token: grpc.health.v1.Health, ServerLive and ServerReady, which
// probes call.
bool IsExemptFromTokens(absl::string_view grpc_path);

// The gRPC listener's credentials: plaintext, or TLS when `tls` is given
// (asking for and verifying a client certificate when it has a client CA).
// With `tokens`, every call but the exempt ones must carry
// `authorization: Bearer <token>`, or it ends UNAUTHENTICATED before any
// handler runs: the check is gRPC's auth metadata processor, on plaintext
// and TLS alike.
std::shared_ptr<grpc::ServerCredentials> MakeGrpcServerCredentials(
    const TlsPems* tls, std::shared_ptr<const BearerTokens> tokens);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_GRPC_SECURITY_H_
