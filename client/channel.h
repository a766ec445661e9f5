// The one way the client library, reluserve-client and reluserve-load open a
// gRPC channel: message limits lifted, and a service config with gRPC's
// retry policy on UNAVAILABLE and, over a target that lists several
// addresses, round_robin load balancing.

#ifndef RELUSERVE_CLIENT_CHANNEL_H_
#define RELUSERVE_CLIENT_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "client/client_security.h"
#include "grpcpp/channel.h"

namespace reluserve {

// How a channel picks among the addresses its target resolves to.
enum class LoadBalancing {
  // round_robin when the target lists several addresses
  // (ListsSeveralAddresses), gRPC's pick_first otherwise.
  kAuto,
  // One connection, to the first address that accepts it.
  kPickFirst,
  // A connection to every address; calls go to the ready ones in turn, and
  // an address that stops answering is left out until it reconnects.
  kRoundRobin,
};

// gRPC's bound on a retry policy's maxAttempts (it cuts larger values to 5).
inline constexpr int kMaxCallAttempts = 5;

// The retry policy's backoff between attempts: 50 ms, then x2 for each
// attempt, at most 500 ms (gRPC 1.51 jitters each by +-20%): 50, 100, 200,
// 400 ms, 0.75 s in all for five attempts.
inline constexpr double kRetryInitialBackoffS = 0.05;
inline constexpr double kRetryMaxBackoffS = 0.5;
inline constexpr double kRetryBackoffMultiplier = 2.0;

struct ChannelOptions {
  // Attempts per call, the first included, while the server answers
  // UNAVAILABLE (or CANCELLED, as gRPC does to calls that reach a server
  // shutting down): gRPC's retry policy, on every method of
  // inference.GRPCInferenceService. 1 turns the policy off (gRPC's own
  // transparent retries of calls that never reached a server remain). In
  // [1, kMaxCallAttempts].
  int max_attempts = kMaxCallAttempts;
  LoadBalancing load_balancing = LoadBalancing::kAuto;
  // Whether http_proxy / grpc_proxy in the environment apply (gRPC's
  // default). reluserve-load never uses a proxy.
  bool http_proxy = true;
  // When >= 0, the channel has a subchannel pool of its own and this number
  // among its arguments: channels with distinct values never share a
  // connection (reluserve-load's --channels). Negative: gRPC's global pool.
  int connection_index = -1;
  // TLS (with a client certificate: mutual TLS) and the bearer token, for
  // gRPC channels and HTTP connections alike. Default: plaintext, no token.
  ClientSecurity security;
};

// Whether `target` names several addresses itself: an `ipv4:` or `ipv6:`
// list such as "ipv4:127.0.0.1:8001,127.0.0.1:8002". A DNS name that
// resolves to several addresses does not count (ask for kRoundRobin).
bool ListsSeveralAddresses(absl::string_view target);

// The host every address of an ipv4:/ipv6: list names ("127.0.0.1" for
// ipv4:127.0.0.1:8001,127.0.0.1:8002; "::1" for ipv6:[::1]:1,[::1]:2), or
// empty when they differ or `target` is no such list. With TLS a channel
// checks each server's certificate against this one host: gRPC would check
// it against the whole list.
std::string SharedListHost(absl::string_view target);

// InvalidArgument, saying what to do instead, when `options` want TLS and
// `target` lists several hosts (no one name to check certificates
// against).
absl::Status ValidateTlsTarget(const ChannelOptions& options,
                               absl::string_view target);

// Whether `options` would round-robin over `target`.
bool UsesRoundRobin(const ChannelOptions& options, absl::string_view target);

// The service config (JSON) a channel to `target` gets: the retry policy
// unless max_attempts is 1, and loadBalancingConfig round_robin when
// UsesRoundRobin.
std::string ServiceConfigJson(const ChannelOptions& options,
                              absl::string_view target);

// InvalidArgument, naming the field, when `options` is out of range or its
// security has a certificate without a key (ValidateClientSecurity).
absl::Status ValidateChannelOptions(const ChannelOptions& options);

// A channel to `target` (host:port or any gRPC target URI) with
// ServiceConfigJson as its service config (resolvers cannot replace it), and
// message size limits lifted to INT32_MAX both ways (as Python tritonclient
// does), so large batches are not cut off at gRPC's 4 MiB default.
// Plaintext unless options.security.tls: then grpc::SslCredentials with its
// CA, certificate and key (the server's certificate must name the target's
// host). With a token, an interceptor adds "authorization: Bearer <token>"
// to every call, over plaintext and TLS alike (gRPC's call credentials
// refuse plaintext channels).
std::shared_ptr<grpc::Channel> CreateClientChannel(
    const std::string& target, const ChannelOptions& options = {});

// "auto", "pick_first" or "round_robin" (the flag values).
absl::string_view LoadBalancingName(LoadBalancing policy);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_CHANNEL_H_
