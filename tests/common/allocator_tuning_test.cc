#include "common/allocator_tuning.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace reluserve {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Waits (bounded by 10 s) until `trim` has run at least `count` times.
bool WaitForTrims(const PeriodicHeapTrim& trim, int count) {
  const steady_clock::time_point deadline =
      steady_clock::now() + std::chrono::seconds(10);
  while (trim.trims() < count) {
    if (steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

TEST(PeriodicHeapTrimTest, TrimsOncePerPeriod) {
  const PeriodicHeapTrim trim(milliseconds(10));
  EXPECT_TRUE(WaitForTrims(trim, 3)) << "trims so far: " << trim.trims();
}

TEST(PeriodicHeapTrimTest, StopsAtOnceWhenDestroyed) {
  const steady_clock::time_point start = steady_clock::now();
  {
    const PeriodicHeapTrim trim(std::chrono::hours(1));
    EXPECT_EQ(trim.trims(), 0);
  }
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(2));
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
// Resident bytes of this process, from /proc/self/statm.
long ResidentBytes() {
  long pages = 0, resident = 0;
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return -1;
  const int read = std::fscanf(statm, "%ld %ld", &pages, &resident);
  std::fclose(statm);
  return read == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

// glibc's allocator only: the sanitizers bring their own, which neither
// mallopt nor malloc_trim reach.
TEST(PeriodicHeapTrimTest, ReturnsWhatTheHeapKeptToTheKernel) {
  KeepLargeBuffersAcrossCalls();
  constexpr size_t kBlock = 1 << 20;
  constexpr int kBlocks = 64;
  std::vector<void*> blocks;
  for (int i = 0; i < kBlocks; ++i) {
    blocks.push_back(std::malloc(kBlock));
    ASSERT_NE(blocks.back(), nullptr);
    std::memset(blocks.back(), 1, kBlock);
  }
  // The last block stays allocated, so that the others are free chunks
  // inside the heap rather than its top.
  for (int i = 0; i + 1 < kBlocks; ++i) std::free(blocks[i]);
  const long kept = ResidentBytes();
  ASSERT_GT(kept, 0);

  const PeriodicHeapTrim trim(milliseconds(10));
  ASSERT_TRUE(WaitForTrims(trim, 1));
  const long trimmed = ResidentBytes();
  std::free(blocks.back());
  // 63 MiB were free; allow 15 for what else the process touched.
  EXPECT_GT(kept - trimmed, 48L << 20)
      << "resident before " << kept << " B, after " << trimmed << " B";
}
#endif

}  // namespace
}  // namespace reluserve
