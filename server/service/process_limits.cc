#include "server/service/process_limits.h"

#include <sys/resource.h>

namespace reluserve {

OpenFileLimit RaiseOpenFileLimit() {
  OpenFileLimit limit;
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0) return limit;
  limit.before = limit.after = files.rlim_cur;
  if (files.rlim_cur == files.rlim_max) return limit;
  files.rlim_cur = files.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &files) == 0) limit.after = files.rlim_cur;
  return limit;
}

}  // namespace reluserve
