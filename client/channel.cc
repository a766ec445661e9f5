#include "client/channel.h"

#include <climits>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpc/grpc.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

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

}  // namespace

bool ListsSeveralAddresses(absl::string_view target) {
  return (absl::StartsWith(target, "ipv4:") ||
          absl::StartsWith(target, "ipv6:")) &&
         absl::StrContains(target, ',');
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
  return absl::OkStatus();
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
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                   arguments);
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
