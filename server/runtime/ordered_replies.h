#ifndef RELUSERVE_SERVER_RUNTIME_ORDERED_REPLIES_H_
#define RELUSERVE_SERVER_RUNTIME_ORDERED_REPLIES_H_

#include <algorithm>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>

#include "absl/status/status.h"

namespace reluserve {

// The decisions of a stream whose messages are answered in any order, on
// any threads, and whose replies go out in request order, one write at a
// time (OrderedStreamReactor's, without gRPC): when the next read may start
// (at most `max_pending` messages read and not yet written), which reply to
// write next, and when and how the stream ends. Each call returns the
// actions due; the caller carries them out after the call returns, holding
// nothing, as the transport may call back on another thread at once.
//
// Protocol: one read in progress from construction until ReadsEnded; each
// read either Adds a slot (then read again only when told) or ends the
// reads. Each slot is Answered once. Every write told is followed by one
// Written. Cancelled at most once, any time.
//
// Thread safety: every method may be called from any thread at once; one
// mutex guards the state.
template <typename Slot>
class OrderedReplies {
 public:
  struct Actions {
    bool read = false;      // start the next read
    Slot* write = nullptr;  // write this slot's reply
    bool finish = false;    // end the stream with `status`
    // OK; the reads' error; or CANCELLED (a failed write, the client gone).
    absl::Status status;
  };

  explicit OrderedReplies(size_t max_pending)
      : max_pending_(std::max<size_t>(max_pending, 1)) {}

  // A read brought a message, `slot`, which now waits for its answer;
  // `actions->read` says whether the next read may start. Returns the slot,
  // which stays owned here until it is written (or the stream dies).
  Slot* Add(std::unique_ptr<Slot> slot, Actions* actions) {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.push_back({std::move(slot), false});
    ++computing_;
    reading_ = false;
    actions->read = MayRead();
    return entries_.back().slot.get();
  }

  // The reads ended: the client half-closed (`error` OK), or a message
  // could not be read (`error` says which; the stream ends with it once the
  // messages before it are written).
  Actions ReadsEnded(absl::Status error) {
    std::lock_guard<std::mutex> lock(mutex_);
    reading_ = false;
    reads_done_ = true;
    read_error_ = std::move(error);
    return Advance(false);
  }

  // `slot`'s reply is ready to write. Until this call only the answering
  // thread touches the slot.
  Actions Answered(const Slot* slot) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (Entry& entry : entries_) {
      if (entry.slot.get() == slot) entry.ready = true;
    }
    --computing_;
    return Advance(false);
  }

  // The write of the oldest reply ended (`ok`: it went out); that slot
  // moves to `*written` for the caller to destroy after the call.
  Actions Written(bool ok, std::unique_ptr<Slot>* written) {
    std::lock_guard<std::mutex> lock(mutex_);
    *written = std::move(entries_.front().slot);
    entries_.pop_front();
    writing_ = false;
    if (!ok) broken_ = true;
    const bool read = MayRead();
    return Advance(read);
  }

  // The client went away: nothing more is read.
  Actions Cancelled() {
    std::lock_guard<std::mutex> lock(mutex_);
    cancelled_ = true;
    return Advance(false);  // a paused stream with nothing computing ends
  }

 private:
  struct Entry {
    std::unique_ptr<Slot> slot;
    bool ready;
  };

  // Whether a paused read may start now; marks it started.
  bool MayRead() {
    if (reading_ || reads_done_ || broken_ || cancelled_ ||
        entries_.size() >= max_pending_) {
      return false;
    }
    reading_ = true;
    return true;
  }

  // The next write, or the end of the stream, whichever is due.
  Actions Advance(bool read) {
    Actions actions;
    actions.read = read;
    // Once writes fail nothing more is read: a paused read never resumes.
    const bool no_more_reads =
        reads_done_ || ((broken_ || cancelled_) && !reading_);
    if (!writing_ && !broken_ && !entries_.empty() && entries_.front().ready) {
      writing_ = true;
      actions.write = entries_.front().slot.get();
    } else if (no_more_reads && computing_ == 0 && !writing_ &&
               (entries_.empty() || broken_) && !finished_) {
      finished_ = true;
      actions.finish = true;
      actions.status =
          broken_ || cancelled_ ? absl::CancelledError("") : read_error_;
    }
    return actions;
  }

  const size_t max_pending_;
  std::mutex mutex_;
  std::deque<Entry> entries_;  // oldest first; guarded by mutex_
  int computing_ = 0;          // added, not yet answered; guarded
  bool reading_ = true;        // a read is in progress; guarded
  bool reads_done_ = false;    // guarded by mutex_
  absl::Status read_error_;    // guarded by mutex_
  bool writing_ = false;       // guarded by mutex_
  bool broken_ = false;        // a write failed; guarded by mutex_
  bool cancelled_ = false;     // guarded by mutex_
  bool finished_ = false;      // guarded by mutex_
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_RUNTIME_ORDERED_REPLIES_H_
