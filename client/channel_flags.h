// The channel flags reluserve-client and reluserve-load share: --max-attempts
// (HTTP too) and --lb-policy, into ChannelOptions (client/channel.h).
// Header-only: the binaries have CLI11 (through reluserve_common), the library
// does not.

#ifndef RELUSERVE_CLIENT_CHANNEL_FLAGS_H_
#define RELUSERVE_CLIENT_CHANNEL_FLAGS_H_

#include <map>
#include <string>

#include "CLI/CLI.hpp"
#include "client/channel.h"

namespace reluserve {

// The help below states the schedule.
static_assert(kRetryInitialBackoffS == 0.05 && kRetryBackoffMultiplier == 2 &&
              kRetryMaxBackoffS >= 0.4 && kMaxCallAttempts == 5);

inline void AddChannelFlags(CLI::App& app, ChannelOptions& options) {
  app.add_option("--max-attempts", options.max_attempts,
                 "Attempts per call while the server answers UNAVAILABLE "
                 "(or CANCELLED while it shuts down): gRPC's retry policy, "
                 "50, 100, 200, 400 ms apart; 1: no retries. HTTP: inference "
                 "requests answered 503 or refused, on the same schedule")
      ->type_name("N")
      ->check(CLI::Range(1, kMaxCallAttempts))
      ->capture_default_str();
  std::map<std::string, LoadBalancing> policies;
  for (LoadBalancing policy : {LoadBalancing::kAuto, LoadBalancing::kPickFirst,
                               LoadBalancing::kRoundRobin}) {
    policies.emplace(std::string(LoadBalancingName(policy)), policy);
  }
  app.add_option("--lb-policy", options.load_balancing,
                 "How calls spread over the target's addresses: round_robin "
                 "(a connection to each), pick_first (one), or auto: "
                 "round_robin for an ipv4:/ipv6: list of several addresses "
                 "(ipv4:127.0.0.1:8001,127.0.0.1:8002), else pick_first")
      ->transform(CLI::CheckedTransformer(policies).description(""))
      ->type_name("auto|pick_first|round_robin")
      ->default_str("auto");
}

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_CHANNEL_FLAGS_H_
