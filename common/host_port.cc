#include "common/host_port.h"

#include "absl/strings/str_cat.h"

namespace reluserve {

std::string HostPort(const std::string& host, int port) {
  // IPv6 literals need brackets in a gRPC address.
  const bool bare_ipv6 =
      host.find(':') != std::string::npos && host.front() != '[';
  return bare_ipv6 ? absl::StrCat("[", host, "]:", port)
                   : absl::StrCat(host, ":", port);
}

}  // namespace reluserve
