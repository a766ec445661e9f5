// OrderedReplies, the ordering core of the ModelStreamInfer reactor, without
// gRPC: each decision step by step, then whole streams driven by a reader,
// answering workers and a writer on threads of their own (also under
// ThreadSanitizer, in reluserve_tsan_tests).
#include "server/runtime/ordered_replies.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace reluserve {
namespace {

using namespace std::chrono_literals;

struct TestSlot {
  explicit TestSlot(int i, std::atomic<int>* alive = nullptr)
      : index(i), alive(alive) {
    if (alive != nullptr) ++*alive;
  }
  ~TestSlot() {
    if (alive != nullptr) --*alive;
  }
  int index;
  std::atomic<int>* alive;
};

using Replies = OrderedReplies<TestSlot>;

TestSlot* Add(Replies& replies, int index, bool* read) {
  Replies::Actions actions;
  TestSlot* slot = replies.Add(std::make_unique<TestSlot>(index), &actions);
  EXPECT_FALSE(actions.finish);
  EXPECT_EQ(actions.write, nullptr);
  *read = actions.read;
  return slot;
}

TEST(OrderedRepliesTest, RepliesGoOutInRequestOrderHoweverTheyAreAnswered) {
  Replies replies(16);
  bool read = false;
  TestSlot* first = Add(replies, 0, &read);
  EXPECT_TRUE(read);
  TestSlot* second = Add(replies, 1, &read);
  TestSlot* third = Add(replies, 2, &read);
  EXPECT_EQ(replies.Answered(third).write, nullptr);
  EXPECT_EQ(replies.Answered(second).write, nullptr);
  const Replies::Actions ended = replies.ReadsEnded(absl::OkStatus());
  EXPECT_FALSE(ended.finish) << "ended while replies are unwritten";
  EXPECT_EQ(replies.Answered(first).write, first);

  std::unique_ptr<TestSlot> written;
  Replies::Actions next = replies.Written(true, &written);
  EXPECT_EQ(written->index, 0);
  EXPECT_EQ(next.write, second);
  next = replies.Written(true, &written);
  EXPECT_EQ(written->index, 1);
  EXPECT_EQ(next.write, third);
  next = replies.Written(true, &written);
  EXPECT_EQ(written->index, 2);
  EXPECT_TRUE(next.finish);
  EXPECT_TRUE(next.status.ok()) << next.status;
  EXPECT_FALSE(next.read);
}

TEST(OrderedRepliesTest, ReadingPausesAtTheBoundUntilAReplyIsWritten) {
  Replies replies(2);
  bool read = false;
  TestSlot* first = Add(replies, 0, &read);
  EXPECT_TRUE(read);
  Add(replies, 1, &read);
  EXPECT_FALSE(read) << "read beyond 2 unwritten messages";
  const Replies::Actions answered = replies.Answered(first);
  EXPECT_EQ(answered.write, first);
  EXPECT_FALSE(answered.read) << "a reply being written still counts";
  std::unique_ptr<TestSlot> written;
  EXPECT_TRUE(replies.Written(true, &written).read);
}

TEST(OrderedRepliesTest, ReadErrorEndsTheStreamAfterTheEarlierReplies) {
  Replies replies(16);
  bool read = false;
  TestSlot* first = Add(replies, 0, &read);
  const absl::Status bad = absl::InvalidArgumentError("message 2 is bad");
  EXPECT_FALSE(replies.ReadsEnded(bad).finish);
  EXPECT_EQ(replies.Answered(first).write, first);
  std::unique_ptr<TestSlot> written;
  const Replies::Actions ended = replies.Written(true, &written);
  EXPECT_TRUE(ended.finish);
  EXPECT_EQ(ended.status, bad);
  EXPECT_FALSE(ended.read);
}

// A failed write ends the stream CANCELLED once nothing computes, without
// writing the replies after it or reading again.
TEST(OrderedRepliesTest, FailedWriteEndsCancelledOnceNothingComputes) {
  Replies replies(16);
  bool read = false;
  TestSlot* first = Add(replies, 0, &read);
  TestSlot* second = Add(replies, 1, &read);
  ASSERT_TRUE(read);  // a read is in progress
  EXPECT_EQ(replies.Answered(first).write, first);
  std::unique_ptr<TestSlot> written;
  const Replies::Actions failed = replies.Written(false, &written);
  EXPECT_FALSE(failed.finish);
  EXPECT_FALSE(failed.read);
  EXPECT_FALSE(replies.ReadsEnded(absl::OkStatus()).finish)
      << "ended while a message computes";
  const Replies::Actions ended = replies.Answered(second);
  EXPECT_EQ(ended.write, nullptr) << "wrote after a failed write";
  EXPECT_TRUE(ended.finish);
  EXPECT_TRUE(absl::IsCancelled(ended.status)) << ended.status;
}

// A paused stream (no read in progress) whose client goes away ends once
// its last answer has been written, or failed to be.
TEST(OrderedRepliesTest, CancelledWhilePausedEndsAfterItsAnswers) {
  Replies replies(1);
  bool read = true;
  TestSlot* only = Add(replies, 0, &read);
  ASSERT_FALSE(read);
  EXPECT_FALSE(replies.Cancelled().finish);
  EXPECT_EQ(replies.Answered(only).write, only);
  std::unique_ptr<TestSlot> written;
  const Replies::Actions ended = replies.Written(false, &written);
  EXPECT_TRUE(ended.finish);
  EXPECT_TRUE(absl::IsCancelled(ended.status)) << ended.status;
  EXPECT_FALSE(ended.read);
  // Nothing is due twice.
  EXPECT_FALSE(replies.Cancelled().finish);
}

TEST(OrderedRepliesTest, CancelledWithNothingPendingEndsAtOnce) {
  Replies replies(4);
  bool read = true;
  TestSlot* only = Add(replies, 0, &read);
  EXPECT_EQ(replies.Answered(only).write, only);
  std::unique_ptr<TestSlot> written;
  EXPECT_FALSE(replies.Written(true, &written).finish);
  // The read granted by Add is still in progress: the stream ends when it
  // completes, as gRPC completes it after a cancellation.
  EXPECT_FALSE(replies.Cancelled().finish);
  const Replies::Actions ended = replies.ReadsEnded(absl::OkStatus());
  EXPECT_TRUE(ended.finish);
  EXPECT_TRUE(absl::IsCancelled(ended.status)) << ended.status;
}

// A stream as the transport runs it: one reader, kWorkers answering in
// scrambled order after short random delays, one writer completing writes
// on its own thread, every action carried out after the call that decided
// it. Optionally the client goes away after `cancel_after` replies.
class StreamRun {
 public:
  StreamRun(int messages, size_t max_pending, int cancel_after)
      : messages_(messages),
        cancel_after_(cancel_after),
        replies_(std::make_unique<Replies>(max_pending)) {}

  // Runs the stream to its end, at most `timeout`; false if it did not end.
  bool Run(std::chrono::seconds timeout) {
    std::vector<std::thread> threads;
    threads.emplace_back([this] { Read(); });
    for (int i = 0; i < kWorkers; ++i) {
      threads.emplace_back([this, i] { Answer(i); });
    }
    threads.emplace_back([this] { Write(); });
    bool ended;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      ended =
          changed_.wait_for(lock, timeout, [this] { return finishes_ > 0; });
      stop_ = true;
      changed_.notify_all();
    }
    for (std::thread& thread : threads) thread.join();
    replies_.reset();  // slots never written die with it
    return ended;
  }

  const std::vector<int>& written() const { return written_; }
  int finishes() const { return finishes_; }
  const absl::Status& status() const { return status_; }
  int added() const { return added_; }
  int alive() const { return alive_.load(); }

 private:
  static constexpr int kWorkers = 3;

  void Act(const Replies::Actions& actions) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (actions.read) ++reads_granted_;
    if (actions.write != nullptr) to_write_.push_back(actions.write);
    if (actions.finish) {
      ++finishes_;
      status_ = actions.status;
    }
    changed_.notify_all();
  }

  // The read in progress from the start, then one per read granted; once
  // the client is gone a read completes without a message.
  void Read() {
    int next = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return stop_ || reads_granted_ > 0; });
        if (stop_) return;
        --reads_granted_;
      }
      if (next == messages_ || cancelled_.load()) {
        Act(replies_->ReadsEnded(absl::OkStatus()));
        return;
      }
      Replies::Actions actions;
      TestSlot* slot =
          replies_->Add(std::make_unique<TestSlot>(next++, &alive_), &actions);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ++added_;
        to_answer_.push_back(slot);
      }
      Act(actions);
    }
  }

  void Answer(int worker) {
    std::mt19937 random(worker);
    while (true) {
      TestSlot* slot;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return stop_ || !to_answer_.empty(); });
        if (stop_) return;
        // From either end: answers finish out of order.
        const bool newest = random() % 2 == 0;
        slot = newest ? to_answer_.back() : to_answer_.front();
        newest ? to_answer_.pop_back() : to_answer_.pop_front();
      }
      std::this_thread::sleep_for(std::chrono::microseconds(random() % 50));
      Act(replies_->Answered(slot));
    }
  }

  void Write() {
    while (true) {
      TestSlot* slot;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return stop_ || !to_write_.empty(); });
        if (stop_) return;
        slot = to_write_.front();
        to_write_.pop_front();
      }
      const bool ok = !cancelled_.load();
      if (ok) {
        written_.push_back(slot->index);
        if (static_cast<int>(written_.size()) == cancel_after_) {
          cancelled_.store(true);
          Act(replies_->Cancelled());
        }
      }
      std::unique_ptr<TestSlot> done;
      Act(replies_->Written(ok, &done));
    }
  }

  const int messages_;
  const int cancel_after_;  // -1: never
  std::unique_ptr<Replies> replies_;
  std::atomic<int> alive_{0};
  std::atomic<bool> cancelled_{false};
  std::vector<int> written_;  // only the writer, until joined
  std::mutex mutex_;
  std::condition_variable changed_;
  int reads_granted_ = 1;                       // guarded by mutex_
  std::deque<TestSlot*> to_answer_, to_write_;  // guarded by mutex_
  int added_ = 0;                               // guarded by mutex_
  int finishes_ = 0;                            // guarded by mutex_
  absl::Status status_;                         // guarded by mutex_
  bool stop_ = false;                           // guarded by mutex_
};

TEST(OrderedRepliesTest, ConcurrentStreamWritesEveryReplyInOrderAndEndsOnce) {
  constexpr int kMessages = 2000;
  StreamRun run(kMessages, /*max_pending=*/4, /*cancel_after=*/-1);
  ASSERT_TRUE(run.Run(60s)) << "the stream did not end";
  EXPECT_EQ(run.finishes(), 1);
  EXPECT_TRUE(run.status().ok()) << run.status();
  ASSERT_EQ(run.written().size(), static_cast<size_t>(kMessages));
  for (int i = 0; i < kMessages; ++i) ASSERT_EQ(run.written()[i], i);
  EXPECT_EQ(run.alive(), 0);
}

TEST(OrderedRepliesTest, ConcurrentStreamWhoseClientGoesAwayEndsCancelledOnce) {
  constexpr int kMessages = 2000, kCancelAfter = 300;
  StreamRun run(kMessages, /*max_pending=*/8, kCancelAfter);
  ASSERT_TRUE(run.Run(60s)) << "the stream did not end";
  EXPECT_EQ(run.finishes(), 1);
  EXPECT_TRUE(absl::IsCancelled(run.status())) << run.status();
  ASSERT_EQ(run.written().size(), static_cast<size_t>(kCancelAfter));
  for (int i = 0; i < kCancelAfter; ++i) ASSERT_EQ(run.written()[i], i);
  // Reading stopped at the bound: a few messages past the cancellation.
  EXPECT_LE(run.added(), kCancelAfter + 8 + 1);
  EXPECT_EQ(run.alive(), 0);
}

}  // namespace
}  // namespace reluserve
