#include "server/http/http_auth.h"

#include <utility>

#include "server/http/http_infer.h"

namespace reluserve {
namespace {

// True when the request may go on; otherwise `response` is the 401.
bool Admit(const BearerTokens& tokens, const httplib::Request& request,
           httplib::Response& response) {
  const absl::Status checked =
      tokens.Check(request.get_header_value("Authorization"));
  if (checked.ok()) return true;
  AnswerError(checked, response);
  response.set_header("WWW-Authenticate", "Bearer realm=\"reluserve\"");
  return false;
}

}  // namespace

httplib::Server::Handler RequireToken(const BearerTokens* tokens,
                                      httplib::Server::Handler handler) {
  if (tokens == nullptr) return handler;
  return [tokens, handler = std::move(handler)](const httplib::Request& request,
                                                httplib::Response& response) {
    if (Admit(*tokens, request, response)) handler(request, response);
  };
}

httplib::Server::HandlerWithContentReader RequireToken(
    const BearerTokens* tokens,
    httplib::Server::HandlerWithContentReader handler) {
  if (tokens == nullptr) return handler;
  return [tokens, handler = std::move(handler)](
             const httplib::Request& request, httplib::Response& response,
             const httplib::ContentReader& body) {
    if (Admit(*tokens, request, response)) {
      handler(request, response, body);
    } else {
      body([](const char*, size_t) { return true; });
    }
  };
}

}  // namespace reluserve
