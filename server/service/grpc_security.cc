#include "server/service/grpc_security.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "spdlog/spdlog.h"

namespace reluserve {
namespace {

absl::string_view View(const grpc_slice& slice) {
  return absl::string_view(
      reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)),
      GRPC_SLICE_LENGTH(slice));
}

// gRPC core's auth metadata processor, with the tokens as its state. It
// answers synchronously: the check is a digest and a few comparisons.
void CheckToken(void* state, grpc_auth_context* /*context*/,
                const grpc_metadata* metadata, size_t count,
                grpc_process_auth_metadata_done_cb done, void* user_data) {
  const auto& tokens =
      *static_cast<std::shared_ptr<const BearerTokens>*>(state);
  absl::string_view path;
  absl::string_view authorization;
  for (size_t i = 0; i < count; ++i) {
    const absl::string_view key = View(metadata[i].key);
    if (key == ":path") {
      path = View(metadata[i].value);
    } else if (key == "authorization") {
      authorization = View(metadata[i].value);
    }
  }
  if (IsExemptFromTokens(path)) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
    return;
  }
  const absl::Status checked = tokens->Check(authorization);
  if (checked.ok()) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
    return;
  }
  const std::string message(checked.message());
  done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_UNAUTHENTICATED,
       message.c_str());
}

void DestroyTokens(void* state) {
  delete static_cast<std::shared_ptr<const BearerTokens>*>(state);
}

// grpc::InsecureServerCredentials() cannot take an auth metadata processor
// (gRPC 1.51 asserts), but gRPC core's insecure credentials can: this wraps
// core credentials of either kind, so tokens work with and without TLS.
class CoreServerCredentials : public grpc::ServerCredentials {
 public:
  CoreServerCredentials(grpc_server_credentials* credentials,
                        std::shared_ptr<const BearerTokens> tokens)
      : credentials_(credentials) {
    if (tokens != nullptr) {
      grpc_server_credentials_set_auth_metadata_processor(
          credentials_,
          {CheckToken, DestroyTokens,
           new std::shared_ptr<const BearerTokens>(std::move(tokens))});
    }
  }
  ~CoreServerCredentials() override {
    grpc_server_credentials_release(credentials_);
  }

  // The token check is set at construction; nothing calls this.
  void SetAuthMetadataProcessor(
      const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {
    spdlog::error("CoreServerCredentials::SetAuthMetadataProcessor ignored");
  }

 private:
  int AddPortToServer(const std::string& address,
                      grpc_server* server) override {
    return grpc_server_add_http2_port(server, address.c_str(), credentials_);
  }

  grpc_server_credentials* const credentials_;
};

}  // namespace

bool IsExemptFromTokens(absl::string_view grpc_path) {
  return absl::StartsWith(grpc_path, "/grpc.health.v1.Health/") ||
         grpc_path == "/inference.GRPCInferenceService/ServerLive" ||
         grpc_path == "/inference.GRPCInferenceService/ServerReady";
}

std::shared_ptr<grpc::ServerCredentials> MakeGrpcServerCredentials(
    const TlsPems* tls, std::shared_ptr<const BearerTokens> tokens) {
  if (tls == nullptr && tokens == nullptr) {
    return grpc::InsecureServerCredentials();
  }
  grpc_server_credentials* credentials = nullptr;
  if (tls == nullptr) {
    credentials = grpc_insecure_server_credentials_create();
  } else {
    grpc_ssl_pem_key_cert_pair pair{tls->private_key.c_str(),
                                    tls->cert_chain.c_str()};
    const bool mutual = !tls->client_ca.empty();
    credentials = grpc_ssl_server_credentials_create_ex(
        mutual ? tls->client_ca.c_str() : nullptr, &pair, 1,
        mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        nullptr);
  }
  return std::make_shared<CoreServerCredentials>(credentials,
                                                 std::move(tokens));
}

}  // namespace reluserve
