#ifndef RELUSERVE_SERVER_HTTP_HTTP_AUTH_H_
#define RELUSERVE_SERVER_HTTP_HTTP_AUTH_H_

#include "httplib.h"
#include "server/service/bearer_tokens.h"

namespace reluserve {

// The REST front end's token check, the twin of the gRPC listener's auth
// metadata processor (server/service/grpc_security.h): wraps a route's
// handler so that, when `tokens` is set, a request without a good
// `Authorization: Bearer <token>` is answered 401 with WWW-Authenticate and
// the handler never runs. /v2/health/* is registered unwrapped, for probes.
httplib::Server::Handler RequireToken(const BearerTokens* tokens,
                                      httplib::Server::Handler handler);
// The same for a handler that reads its body itself: the body of a refused
// request is read and dropped, so the client gets the 401 rather than a
// connection reset while it is still sending.
httplib::Server::HandlerWithContentReader RequireToken(
    const BearerTokens* tokens,
    httplib::Server::HandlerWithContentReader handler);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_HTTP_HTTP_AUTH_H_
