#include "common/allocator_tuning.h"

#include <malloc.h>

namespace reluserve {

void KeepLargeBuffersAcrossCalls() {
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

}  // namespace reluserve
