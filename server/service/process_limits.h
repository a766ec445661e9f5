#ifndef RELUSERVE_SERVER_SERVICE_PROCESS_LIMITS_H_
#define RELUSERVE_SERVER_SERVICE_PROCESS_LIMITS_H_

#include <cstdint>

namespace reluserve {

struct OpenFileLimit {
  uint64_t before = 0;
  uint64_t after = 0;  // == before when it could not be raised
};

// Raises the soft limit on open files to the hard limit: every client
// connection is a file descriptor, and at the soft limit (often 1024) gRPC's
// listener stops accepting for good.
OpenFileLimit RaiseOpenFileLimit();

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_PROCESS_LIMITS_H_
