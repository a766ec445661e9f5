#include "client/channel.h"

#include <climits>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "grpc/grpc.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_interceptor.h"

namespace reluserve {
namespace {

// Every method of the inference service: inference is a pure function of the
// request, so a second attempt never applies anything twice. gRPC retries an
// attempt only while the server has sent nothing but a Trailers-Only answer;
// a stream whose first response has arrived is committed and never retried.
constexpr char kRetriedService[] = "inference.GRPCInferenceService";

// UNAVAILABLE: a draining or overloaded server, or none there (yet).
// CANCELLED: what a gRPC server answers calls that reach it while it shuts
// down, before a handler took them (grpc/grpc#41785; seen in the drain of a
// replica under round_robin). The caller's own cancellations and deadlines
// are never retried: gRPC commits a call before cancelling it.
constexpr char kRetryableCodes[] = R"(["UNAVAILABLE","CANCELLED"])";

// gRPC buffers a call's messages for a retry up to this many bytes and
// commits the call (no retries) beyond them; its default, 256 KiB, is less
// than one request of 100 rows of 3072 floats (1.2 MB). The buffer keeps a
// call's serialized messages until its first response, no longer.
constexpr int kPerCallRetryBufferBytes = INT_MAX;

// Adds the authorization metadata to each call as it leaves (retries resend
// the call's metadata as it was).
class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(std::string value) : value_(std::move(value)) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) final {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", value_);
    }
    methods->Proceed();
  }

 private:
  const std::string value_;
};

class BearerInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(absl::string_view token)
      : value_(BearerValue(token)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) final {
    return new BearerInterceptor(value_);
  }

 private:
  const std::string value_;
};

std::shared_ptr<grpc::ChannelCredentials> CredentialsOf(
    const ClientSecurity& security) {
  if (!security.tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = security.ca_pem;
  ssl.pem_private_key = security.key_pem;
  ssl.pem_cert_chain = security.cert_pem;
  return grpc::SslCredentials(ssl);
}

}  // namespace

bool ListsSeveralAddresses(absl::string_view target) {
  return (absl::StartsWith(target, "ipv4:") ||
          absl::StartsWith(target, "ipv6:")) &&
         absl::StrContains(target, ',');
}

std::string SharedListHost(absl::string_view target) {
  const bool ipv6 = absl::ConsumePrefix(&target, "ipv6:");
  if (!ipv6 && !absl::ConsumePrefix(&target, "ipv4:")) return "";
  std::string shared;
  for (absl::string_view address : absl::StrSplit(target, ',')) {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) return "";
    absl::string_view host = address.substr(0, colon);
    if (ipv6 &&
        !(absl::ConsumePrefix(&host, "[") && absl::ConsumeSuffix(&host, "]"))) {
      return "";
    }
    if (host.empty() || (!shared.empty() && host != shared)) return "";
    shared = std::string(host);
  }
  return shared;
}

absl::Status ValidateTlsTarget(const ChannelOptions& options,
                               absl::string_view target) {
  if (!options.security.tls || !ListsSeveralAddresses(target) ||
      !SharedListHost(target).empty()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "TLS checks every server's certificate against one name, and ", target,
      " lists several hosts: give a DNS name that resolves to them and that "
      "their certificates name (dns:///NAME:PORT --lb-policy round_robin)"));
}

bool UsesRoundRobin(const ChannelOptions& options, absl::string_view target) {
  switch (options.load_balancing) {
    case LoadBalancing::kRoundRobin:
      return true;
    case LoadBalancing::kPickFirst:
      return false;
    case LoadBalancing::kAuto:
      break;
  }
  return ListsSeveralAddresses(target);
}

std::string ServiceConfigJson(const ChannelOptions& options,
                              absl::string_view target) {
  std::vector<std::string> fields;
  if (UsesRoundRobin(options, target)) {
    fields.push_back(R"("loadBalancingConfig":[{"round_robin":{}}])");
  }
  // gRPC refuses a policy with maxAttempts below 2 (the whole service config
  // with it), so no retries means no policy.
  if (options.max_attempts > 1) {
    fields.push_back(absl::StrCat(
        R"("methodConfig":[{"name":[{"service":")", kRetriedService,
        R"("}],"retryPolicy":{"maxAttempts":)", options.max_attempts,
        R"(,"initialBackoff":")", kRetryInitialBackoffS, R"(s","maxBackoff":")",
        kRetryMaxBackoffS, R"(s","backoffMultiplier":)",
        kRetryBackoffMultiplier, R"(,"retryableStatusCodes":)", kRetryableCodes,
        "}}]"));
  }
  return absl::StrCat("{", absl::StrJoin(fields, ","), "}");
}

absl::Status ValidateChannelOptions(const ChannelOptions& options) {
  if (options.max_attempts < 1 || options.max_attempts > kMaxCallAttempts) {
    return absl::InvalidArgumentError(
        absl::StrCat("max attempts is ", options.max_attempts,
                     "; it must be in [1, ", kMaxCallAttempts, "]"));
  }
  return ValidateClientSecurity(options.security);
}

std::shared_ptr<grpc::Channel> CreateClientChannel(
    const std::string& target, const ChannelOptions& options) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxSendMessageSize(INT_MAX);
  arguments.SetMaxReceiveMessageSize(INT_MAX);
  arguments.SetServiceConfigJSON(ServiceConfigJson(options, target));
  // Ours, not one a DNS TXT record might carry.
  arguments.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  arguments.SetInt(GRPC_ARG_PER_RPC_RETRY_BUFFER_SIZE,
                   kPerCallRetryBufferBytes);
  if (!options.http_proxy) arguments.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  if (options.connection_index >= 0) {
    // Its own subchannel pool and distinct arguments: its own TCP
    // connection, not one shared by all channels to the target.
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    arguments.SetInt("reluserve.connection_index", options.connection_index);
  }
  if (const std::string host = SharedListHost(target);
      options.security.tls && !host.empty()) {
    arguments.SetSslTargetNameOverride(host);
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      CredentialsOf(options.security);
  if (options.security.token.empty()) {
    return grpc::CreateCustomChannel(target, credentials, arguments);
  }
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(
      std::make_unique<BearerInterceptorFactory>(options.security.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      target, credentials, arguments, std::move(interceptors));
}

absl::string_view LoadBalancingName(LoadBalancing policy) {
  switch (policy) {
    case LoadBalancing::kPickFirst:
      return "pick_first";
    case LoadBalancing::kRoundRobin:
      return "round_robin";
    case LoadBalancing::kAuto:
      break;
  }
  return "auto";
}

}  // namespace reluserve
