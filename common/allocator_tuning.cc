#include "common/allocator_tuning.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "absl/time/time.h"

namespace reluserve {

void KeepLargeBuffersAcrossCalls() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  // glibc makes up to 8 arenas per core, one per busy thread (the server
  // runs ~48), and each keeps its peak. One per core is as many as can be
  // busy at once; an operator's MALLOC_ARENA_MAX is left as it is.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) {
    const unsigned cores = std::max(2u, std::thread::hardware_concurrency());
    mallopt(M_ARENA_MAX, static_cast<int>(cores));
  }
}

PeriodicHeapTrim::PeriodicHeapTrim(std::chrono::milliseconds period)
    : thread_([this, period] { Run(period); }) {}

PeriodicHeapTrim::~PeriodicHeapTrim() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

int PeriodicHeapTrim::trims() const {
  absl::MutexLock lock(&mu_);
  return trims_;
}

void PeriodicHeapTrim::Run(std::chrono::milliseconds period) {
  const absl::Duration wait = absl::FromChrono(period);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), wait)) return;
    }
    malloc_trim(0);
    absl::MutexLock lock(&mu_);
    ++trims_;
  }
}

}  // namespace reluserve
