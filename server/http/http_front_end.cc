#include "server/http/http_front_end.h"

#include <simdjson.h>

#include <algorithm>
#include <regex>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpc_service.pb.h"
#include "httplib.h"
#include "server/http/http_auth.h"
#include "server/http/http_infer.h"
#include "server/http/json_writer.h"
#include "server/service/model_signature.h"
#include "server/service/service_messages.h"

namespace reluserve {
namespace {

constexpr char kJson[] = "application/json";
// /v2/models/{model}[/versions/{version}] as regex groups 1 and 2.
#define RELUSERVE_MODEL_PATH "/v2/models/([^/]+)(?:/versions/([^/]+))?"

std::string Group(const httplib::Request& request, size_t index) {
  return index < request.matches.size() ? std::string(request.matches[index])
                                        : std::string();
}

absl::Status NoEndpoint(const httplib::Request& request) {
  return absl::NotFoundError(absl::StrCat(
      "no endpoint ", request.method, " ", request.path,
      "; the REST API is KServe v2's: /v2/health/{live,ready}, /v2, "
      "/v2/models/{model}[/versions/{version}][/ready|/config|/stats|/infer], "
      "/v2/repository/index (docs/http.md)"));
}

void AnswerJson(std::string body, httplib::Response& response) {
  response.status = 200;
  response.set_content(std::move(body), kJson);
}

// The optional {"ready": bool} body of POST /v2/repository/index.
absl::StatusOr<bool> ReadyOnly(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return false;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(body).get(root) != simdjson::SUCCESS ||
      root.type() != simdjson::dom::element_type::OBJECT) {
    return absl::InvalidArgumentError(
        "expected the body to be empty or a JSON object such as "
        "{\"ready\": true}");
  }
  simdjson::dom::element ready;
  if (root.at_key("ready").get(ready) != simdjson::SUCCESS) return false;
  bool value = false;
  if (ready.get_bool().get(value) != simdjson::SUCCESS) {
    return absl::InvalidArgumentError("expected 'ready' to be true or false");
  }
  return value;
}

// Every route but /v2/health/* goes through RequireToken.
void Route(httplib::Server& http, std::shared_ptr<InferenceRuntime> runtime,
           int64_t max_receive_bytes, const BearerTokens* tokens) {
  InferenceRuntime* const rt = runtime.get();
  const auto guarded = [tokens](httplib::Server::Handler handler) {
    return RequireToken(tokens, std::move(handler));
  };
  http.Get("/v2/health/live",
           [](const httplib::Request&, httplib::Response& response) {
             response.status = 200;
           });
  http.Get("/v2/health/ready",
           [rt](const httplib::Request&, httplib::Response& response) {
             response.status = rt->ready() ? 200 : 503;
           });
  http.Get("/v2",
           guarded([](const httplib::Request&, httplib::Response& response) {
             inference::ServerMetadataResponse metadata;
             FillServerMetadata(&metadata);
             AnswerJson(ProtoToJson(metadata), response);
           }));
  const auto statistics = [rt](const httplib::Request& request,
                               httplib::Response& response) {
    inference::ModelStatisticsResponse statistics;
    if (absl::Status filled = FillModelStatistics(
            rt->models(), Group(request, 1), Group(request, 2), &statistics);
        !filled.ok()) {
      return AnswerError(filled, response);
    }
    AnswerJson(ProtoToJson(statistics), response);
  };
  // Before the model routes, which would take "stats" for a model name.
  http.Get("/v2/models/stats", guarded(statistics));
  http.Get(RELUSERVE_MODEL_PATH "/stats", guarded(statistics));
  http.Get(RELUSERVE_MODEL_PATH "/ready",
           guarded([rt](const httplib::Request& request,
                        httplib::Response& response) {
             absl::StatusOr<ServedModel*> model =
                 rt->models().Find(Group(request, 1), Group(request, 2));
             if (!model.ok()) return AnswerError(model.status(), response);
             response.status = rt->ready() ? 200 : 503;
           }));
  http.Get(RELUSERVE_MODEL_PATH "/config",
           guarded([rt](const httplib::Request& request,
                        httplib::Response& response) {
             absl::StatusOr<ServedModel*> model =
                 rt->models().Find(Group(request, 1), Group(request, 2));
             if (!model.ok()) return AnswerError(model.status(), response);
             inference::ModelConfigResponse config;
             FillModelConfig((*model)->config(), (*model)->signature(),
                             (*model)->scheduling(), config.mutable_config());
             AnswerJson(ProtoToJson(config.config()), response);
           }));
  http.Get(RELUSERVE_MODEL_PATH, guarded([rt](const httplib::Request& request,
                                              httplib::Response& response) {
             absl::StatusOr<ServedModel*> model =
                 rt->models().Find(Group(request, 1), Group(request, 2));
             if (!model.ok()) return AnswerError(model.status(), response);
             inference::ModelMetadataResponse metadata;
             FillModelMetadata((*model)->config(),
                               rt->models().VersionsOf((*model)->config().name),
                               (*model)->signature(), &metadata);
             AnswerJson(ProtoToJson(metadata), response);
           }));
  http.Post(RELUSERVE_MODEL_PATH "/infer",
            RequireToken(tokens, [runtime, max_receive_bytes](
                                     const httplib::Request& request,
                                     httplib::Response& response,
                                     const httplib::ContentReader& body) {
              ServeInfer(*runtime, max_receive_bytes, Group(request, 1),
                         Group(request, 2), request, response, body);
            }));
  const httplib::Server::Handler repository_index = guarded(
      [rt](const httplib::Request& request, httplib::Response& response) {
        absl::StatusOr<bool> ready_only = ReadyOnly(request.body);
        if (!ready_only.ok()) return AnswerError(ready_only.status(), response);
        inference::RepositoryIndexResponse index;
        FillRepositoryIndex(rt->models(), rt->ready(), *ready_only, &index);
        AnswerJson(RepeatedToJson(index, "models"), response);
      });
  http.Post("/v2/repository/index", repository_index);
  // `curl -X POST URL` (and tritonclient's index call) sends neither
  // Content-Length nor a body, which cpp-httplib would wait 5 s for and then
  // refuse; such a request has no body (RFC 9112, 6.3), so it is routed
  // here, with an empty body.
  static const std::regex infer(RELUSERVE_MODEL_PATH "/infer");
  const httplib::Server::Handler bodyless_infer =
      guarded([runtime, max_receive_bytes](const httplib::Request& request,
                                           httplib::Response& response) {
        std::smatch match;
        std::regex_match(request.path, match, infer);
        const httplib::ContentReader no_body(
            [](httplib::ContentReceiver) { return true; },
            [](httplib::MultipartContentHeader, httplib::ContentReceiver) {
              return true;
            });
        ServeInfer(*runtime, max_receive_bytes, match[1], match[2], request,
                   response, no_body);
      });
  http.set_pre_routing_handler(
      [repository_index, bodyless_infer](const httplib::Request& request,
                                         httplib::Response& response) {
        if (request.method != "POST" || request.has_header("Content-Length") ||
            request.has_header("Transfer-Encoding")) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        if (std::regex_match(request.path, infer)) {
          bodyless_infer(request, response);
        } else if (request.path == "/v2/repository/index") {
          repository_index(request, response);
        } else {
          AnswerError(NoEndpoint(request), response);
        }
        return httplib::Server::HandlerResponse::Handled;
      });
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpFrontEnd>> HttpFrontEnd::Start(
    const Options& options, std::shared_ptr<InferenceRuntime> runtime) {
  absl::StatusOr<std::unique_ptr<httplib::Server>> made =
      HttpListener::NewServer(options.tls);
  if (!made.ok()) return made.status();
  std::unique_ptr<httplib::Server> http = *std::move(made);
  const int threads = std::max(1, options.threads);
  http->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Small replies must not wait for Nagle's algorithm; clients keep their
  // connections for many requests (cpp-httplib's default closes after 5).
  http->set_tcp_nodelay(true);
  http->set_keep_alive_max_count(1u << 30);
  http->set_keep_alive_timeout(kKeepAliveSeconds);
  // The JSON bound; ServeInfer holds binary bodies to the tighter one.
  http->set_payload_max_length(
      static_cast<size_t>(16 * options.max_receive_bytes));
  http->set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& request, httplib::Response& response) {
        if (!response.body.empty())
          return httplib::Server::HandlerResponse::Unhandled;
        if (response.status == 404) {
          AnswerError(absl::NotFoundError(absl::StrCat(
                          "no endpoint ", request.method, " ", request.path,
                          "; the REST API is KServe v2's (docs/api.md)")),
                      response);
        } else if (response.status == 413) {
          AnswerError(absl::ResourceExhaustedError(
                          "the request body is above the server's size limit"),
                      response);
        } else {
          const int status = response.status;
          AnswerError(absl::InvalidArgumentError(absl::StrCat(
                          "the request could not be read as HTTP/1.1 (status ",
                          status, ")")),
                      response);
          response.status = status;
        }
        return httplib::Server::HandlerResponse::Handled;
      }));
  http->set_exception_handler([](const httplib::Request&,
                                 httplib::Response& response,
                                 std::exception_ptr error) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    AnswerError(absl::InternalError(absl::StrCat("unexpected error: ", what)),
                response);
  });
  Route(*http, std::move(runtime), options.max_receive_bytes,
        options.tokens.get());
  absl::StatusOr<std::unique_ptr<HttpListener>> listener = HttpListener::Start(
      std::move(http), options.host, options.port, "HTTP/REST", "--http-port");
  if (!listener.ok()) return listener.status();
  std::unique_ptr<HttpFrontEnd> front_end(new HttpFrontEnd());
  front_end->tokens_ = options.tokens;
  front_end->listener_ = *std::move(listener);
  return front_end;
}

}  // namespace reluserve
