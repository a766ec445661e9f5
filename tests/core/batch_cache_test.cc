#include "server/core/batch_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

namespace reluserve {
namespace {

TEST(BatchCacheTest, BuildsOnceAndThenHits) {
  BatchCache<int> cache(4);
  int builds = 0;
  auto build = [&] {
    ++builds;
    return std::make_shared<const int>(7);
  };
  EXPECT_EQ(*cache.GetOrBuild(3, build), 7);
  EXPECT_EQ(*cache.GetOrBuild(3, build), 7);
  EXPECT_EQ(builds, 1);
}

TEST(BatchCacheTest, DropsTheLeastRecentlyUsed) {
  BatchCache<int64_t> cache(2);
  std::vector<int64_t> built;
  auto getter = [&](int64_t key) {
    return *cache.GetOrBuild(key, [&] {
      built.push_back(key);
      return std::make_shared<const int64_t>(key * 10);
    });
  };
  getter(1);
  getter(2);
  getter(1);  // 2 is now the least recently used
  getter(3);  // evicts 2
  EXPECT_EQ(cache.size(), 2u);
  getter(1);  // still cached
  getter(2);  // rebuilt
  EXPECT_EQ(built, (std::vector<int64_t>{1, 2, 3, 2}));
}

TEST(BatchCacheTest, EvictedValuesStayAliveForTheirHolders) {
  BatchCache<int> cache(1);
  std::shared_ptr<const int> held =
      cache.GetOrBuild(1, [] { return std::make_shared<const int>(1); });
  cache.GetOrBuild(2, [] { return std::make_shared<const int>(2); });
  EXPECT_EQ(*held, 1);
}

TEST(BatchCacheTest, AFailedBuildLeavesNothingBehind) {
  BatchCache<int> cache(2);
  EXPECT_THROW(cache.GetOrBuild(1,
                                []() -> std::shared_ptr<const int> {
                                  throw std::runtime_error("no");
                                }),
               std::runtime_error);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(*cache.GetOrBuild(1, [] { return std::make_shared<const int>(5); }),
            5);
}

TEST(BatchCacheTest, RacingCallersAllGetTheOneCachedValue) {
  BatchCache<int> cache(4);
  std::atomic<int> builds{0};
  std::vector<const int*> seen(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::shared_ptr<const int> value = cache.GetOrBuild(9, [&] {
        ++builds;
        return std::make_shared<const int>(9);
      });
      // Later calls must all see the value that was kept.
      seen[t] =
          cache.GetOrBuild(9, [] { return std::make_shared<const int>(-1); })
              .get();
      EXPECT_EQ(*value, 9);
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_GE(builds.load(), 1);
  for (const int* pointer : seen) EXPECT_EQ(pointer, seen[0]);
}

}  // namespace
}  // namespace reluserve
