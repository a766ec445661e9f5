#ifndef RELUSERVE_COMMON_ALLOCATOR_TUNING_H_
#define RELUSERVE_COMMON_ALLOCATOR_TUNING_H_

namespace reluserve {

// Keeps megabyte tensor buffers in the heap between calls. By default glibc
// returns them to the kernel after each request and faults them in again on
// the next (hundreds of page faults per call, measured). As each malloc
// arena keeps its peak, the arenas are capped at one per core, so that what
// is kept stays bounded. Call once at start-up, before serving.
void KeepLargeBuffersAcrossCalls();

}  // namespace reluserve

#endif  // RELUSERVE_COMMON_ALLOCATOR_TUNING_H_
