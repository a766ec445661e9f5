#include "bench/echo_stream.h"

#include <utility>

#include "server/service/wire_response.h"

namespace reluserve {

BareEchoStream::BareEchoStream(Replier replier, const std::string& unmatched)
    : replier_(std::move(replier)),
      unmatched_(StreamErrorReply("UNIMPLEMENTED: " + unmatched)) {
  StartRead(&incoming_);
}

void BareEchoStream::OnReadDone(bool ok) {
  grpc::ByteBuffer reply;
  if (ok && !replier_(incoming_, &reply)) reply = unmatched_;
  mutex_.Lock();
  reading_ = false;
  bool read = false;
  if (!ok) {
    reads_done_ = true;
  } else {
    queued_.push_back(std::move(reply));
    read = queued_.size() < kMaxQueued && !broken_;
    read_paused_ = !read && !broken_;
  }
  Advance(read);
}

void BareEchoStream::OnWriteDone(bool ok) {
  mutex_.Lock();
  queued_.pop_front();
  writing_ = false;
  if (!ok) broken_ = true;
  const bool read = read_paused_ && !broken_;
  if (read) read_paused_ = false;
  Advance(read);
}

void BareEchoStream::Advance(bool read) {
  if (read) reading_ = true;
  const grpc::ByteBuffer* write = nullptr;
  bool finish = false;
  if (!writing_ && !broken_ && !queued_.empty()) {
    writing_ = true;
    write = &queued_.front();  // a deque keeps it in place while others come
  } else if (!reading_ && !writing_ && !finished_ &&
             (broken_ || (reads_done_ && queued_.empty()))) {
    finished_ = true;
    finish = true;
  }
  const bool broken = broken_;
  mutex_.Unlock();
  if (read) StartRead(&incoming_);
  if (write != nullptr) StartWrite(write);
  if (finish) Finish(broken ? grpc::Status::CANCELLED : grpc::Status::OK);
}

}  // namespace reluserve
