#ifndef RELUSERVE_SERVER_CORE_BATCH_CACHE_H_
#define RELUSERVE_SERVER_CORE_BATCH_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace reluserve {

// Immutable values keyed by batch size, least recently used dropped beyond
// `capacity`. Values are built outside the lock, so one slow build does not
// stall callers of other batch sizes; two callers racing on the same new key
// may both build, and the first to finish wins.
//
// Thread safety: every method may be called concurrently. A value handed out
// stays alive for its holder after eviction.
template <typename Value>
class BatchCache {
 public:
  explicit BatchCache(size_t capacity) : capacity_(capacity) {}

  // The value for `batch`, made by `build()` (returning
  // std::shared_ptr<const Value>) when it is not cached. Exceptions from
  // `build` propagate and leave the cache unchanged.
  template <typename Build>
  std::shared_ptr<const Value> GetOrBuild(int64_t batch, Build&& build) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto found = entries_.find(batch); found != entries_.end()) {
        lru_.splice(lru_.begin(), lru_, found->second.position);
        return found->second.value;
      }
    }
    std::shared_ptr<const Value> built = build();
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto found = entries_.find(batch); found != entries_.end()) {
      return found->second.value;
    }
    if (entries_.size() >= capacity_) {
      entries_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(batch);
    entries_.emplace(batch, Entry{built, lru_.begin()});
    return built;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_.size();
  }

 private:
  struct Entry {
    std::shared_ptr<const Value> value;
    std::list<int64_t>::iterator position;
  };

  const size_t capacity_;
  mutable std::mutex mutex_;
  std::list<int64_t> lru_;  // most recent first; guarded by mutex_
  std::unordered_map<int64_t, Entry> entries_;  // guarded by mutex_
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_CORE_BATCH_CACHE_H_
