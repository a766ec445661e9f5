#include "common/allocator_tuning.h"

#include <malloc.h>

#include <algorithm>
#include <thread>

namespace reluserve {

void KeepLargeBuffersAcrossCalls() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  // Each arena keeps what it held at its peak, and glibc makes up to 8 per
  // core, one per busy thread (the server runs ~48): RSS crept for minutes
  // under a mixed load (600 s soaks, docs/reliability.md: +13.4 % after the
  // first 60 s with glibc's default, +10.4 % with 2 per core, +2.3 % with
  // 2 on 2 cores). One per core is as many as can be busy at once.
  const unsigned cores = std::max(2u, std::thread::hardware_concurrency());
  mallopt(M_ARENA_MAX, static_cast<int>(cores));
}

}  // namespace reluserve
