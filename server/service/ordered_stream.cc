#include "server/service/ordered_stream.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/service/grpc_request.h"

namespace reluserve {
namespace {

grpc::ByteBuffer ErrorReply(const absl::Status& status) {
  return StreamErrorReply(absl::StrCat(absl::StatusCodeToString(status.code()),
                                       ": ", status.message()));
}

}  // namespace

OrderedStreamReactor::OrderedStreamReactor(Handler handler,
                                           const Options& options)
    : handler_(std::move(handler)), options_(options) {
  StartRead(&incoming_);
}

bool OrderedStreamReactor::MayRead() {
  if (reading_ || reads_done_ || broken_ || cancelled_ ||
      slots_.size() >= std::max<size_t>(options_.max_pending, 1)) {
    return false;
  }
  reading_ = true;
  return true;
}

void OrderedStreamReactor::OnReadDone(bool ok) {
  if (!ok) {
    std::unique_lock<std::mutex> lock(mutex_);
    reading_ = false;
    reads_done_ = true;
    Advance(lock);
    return;
  }
  ++messages_read_;
  auto slot = std::make_unique<Slot>();
  // Consumes incoming_, ready for the next read.
  if (!grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(
           &incoming_, &slot->request)
           .ok()) {
    std::unique_lock<std::mutex> lock(mutex_);
    reading_ = false;
    reads_done_ = true;
    read_error_ = grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("message ", messages_read_,
                     " of the stream could not be parsed as an "
                     "inference.ModelInferRequest; the messages before it "
                     "were answered, it and any later ones were not "
                     "processed"));
    Advance(lock);
    return;
  }
  Slot* added;
  bool read;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    slots_.push_back(std::move(slot));
    added = slots_.back().get();
    ++computing_;
    reading_ = false;
    read = MayRead();
  }
  handler_(added->request, added->response,
           [this, added](const absl::Status& status, Sent sent) {
             Answer(added, status, std::move(sent));
           });
  if (read) StartRead(&incoming_);
}

void OrderedStreamReactor::Answer(Slot* slot, const absl::Status& status,
                                  Sent sent) {
  // Until `ready` is set only this thread touches the slot's messages.
  if (!status.ok()) {
    slot->wire = ErrorReply(status);
  } else if (const int64_t bytes =
                 StreamResponseBytes(slot->response.ByteSize());
             bytes > options_.max_reply_bytes) {
    // gRPC would refuse to send it and end the stream.
    slot->wire = ErrorReply(absl::InternalError(absl::StrCat(
        "the response is ", bytes, " bytes, above the server's send limit of ",
        options_.max_reply_bytes, " bytes")));
  } else {
    slot->wire = slot->response.Release(/*streamed=*/true);
  }
  // Only the wire bytes are kept until the write: free the request.
  {
    inference::ModelInferRequest empty;
    slot->request.Swap(&empty);
  }
  slot->response.Clear();  // the wire holds the output bytes
  std::unique_lock<std::mutex> lock(mutex_);
  slot->sent = std::move(sent);
  slot->ready = true;
  --computing_;
  Advance(lock);
}

void OrderedStreamReactor::OnCancel() {
  std::unique_lock<std::mutex> lock(mutex_);
  cancelled_ = true;
  Advance(lock);  // a paused stream with nothing computing finishes now
}

void OrderedStreamReactor::OnWriteDone(bool ok) {
  std::unique_lock<std::mutex> lock(mutex_);
  // Destroyed (its `sent` run) after unlocking.
  std::unique_ptr<Slot> written = std::move(slots_.front());
  slots_.pop_front();
  writing_ = false;
  if (!ok) broken_ = true;
  const bool read = MayRead();
  Advance(lock, read);
}

void OrderedStreamReactor::Advance(std::unique_lock<std::mutex>& lock,
                                   bool read) {
  grpc::ByteBuffer* to_write = nullptr;
  bool finish = false;
  grpc::Status status;
  // Once writes fail nothing more is read: a paused read never resumes.
  const bool no_more_reads =
      reads_done_ || ((broken_ || cancelled_) && !reading_);
  if (!writing_ && !broken_ && !slots_.empty() && slots_.front()->ready) {
    writing_ = true;
    to_write = &slots_.front()->wire;
  } else if (no_more_reads && computing_ == 0 && !writing_ &&
             (slots_.empty() || broken_) && !finished_) {
    finished_ = true;
    finish = true;
    status = broken_ || cancelled_ ? grpc::Status::CANCELLED : read_error_;
  }
  lock.unlock();
  if (read) StartRead(&incoming_);
  if (to_write != nullptr) StartWrite(to_write);
  if (finish) Finish(status);
}

}  // namespace reluserve
