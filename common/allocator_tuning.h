#ifndef RELUSERVE_COMMON_ALLOCATOR_TUNING_H_
#define RELUSERVE_COMMON_ALLOCATOR_TUNING_H_

#include <chrono>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace reluserve {

// Keeps megabyte tensor buffers in the heap between calls. By default glibc
// returns them to the kernel after each request and faults them in again on
// the next (hundreds of page faults per call, measured). As each malloc
// arena keeps its peak, the arenas are capped at one per core (unless
// MALLOC_ARENA_MAX is set), so that what is kept stays bounded. Call once at
// start-up, before serving.
void KeepLargeBuffersAcrossCalls();

// What KeepLargeBuffersAcrossCalls keeps is never returned, and glibc's
// arenas fragment: under a steady mixed load RSS crept up for minutes. This
// returns every arena's free pages to the kernel (malloc_trim) once per
// `period` on a thread of its own, so RSS follows what is in use, and a
// buffer in steady use faults in at most once per period rather than once
// per call. Start it after the signal mask is set (the thread inherits it).
//
// Thread-safe: the trimming thread touches nothing but glibc's allocator;
// construct and destroy on one thread. The destructor stops and joins it.
class PeriodicHeapTrim {
 public:
  explicit PeriodicHeapTrim(std::chrono::milliseconds period);
  ~PeriodicHeapTrim();
  PeriodicHeapTrim(const PeriodicHeapTrim&) = delete;
  PeriodicHeapTrim& operator=(const PeriodicHeapTrim&) = delete;

  // How many trims have run.
  int trims() const;

 private:
  void Run(std::chrono::milliseconds period);

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int trims_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace reluserve

#endif  // RELUSERVE_COMMON_ALLOCATOR_TUNING_H_
