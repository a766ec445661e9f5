#ifndef RELUSERVE_COMMON_HOST_PORT_H_
#define RELUSERVE_COMMON_HOST_PORT_H_

#include <string>

namespace reluserve {

// "host:port" as gRPC and HTTP clients dial it, with brackets around an IPv6
// literal ("[::1]:8001").
std::string HostPort(const std::string& host, int port);

}  // namespace reluserve

#endif  // RELUSERVE_COMMON_HOST_PORT_H_
