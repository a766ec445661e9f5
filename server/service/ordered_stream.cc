#include "server/service/ordered_stream.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace reluserve {

OrderedStreamReactor::OrderedStreamReactor(Handler handler)
    : handler_(std::move(handler)) {
  StartRead(&incoming_);
}

void OrderedStreamReactor::OnReadDone(bool ok) {
  if (!ok) {
    std::unique_lock<std::mutex> lock(mutex_);
    reads_done_ = true;
    Advance(lock);
    return;
  }
  Slot* slot;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    slots_.push_back(std::make_unique<Slot>());
    slot = slots_.back().get();
    slot->request.Swap(&incoming_);
    ++computing_;
  }
  handler_(
      slot->request, *slot->reply.mutable_infer_response(),
      [this, slot](const absl::Status& status) {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!status.ok()) {
          slot->reply.clear_infer_response();
          slot->reply.set_error_message(absl::StrCat(
              absl::StatusCodeToString(status.code()), ": ", status.message()));
        }
        slot->ready = true;
        --computing_;
        Advance(lock);
      });
  StartRead(&incoming_);
}

void OrderedStreamReactor::OnWriteDone(bool ok) {
  std::unique_lock<std::mutex> lock(mutex_);
  slots_.pop_front();
  writing_ = false;
  if (!ok) broken_ = true;
  Advance(lock);
}

void OrderedStreamReactor::Advance(std::unique_lock<std::mutex>& lock) {
  inference::ModelStreamInferResponse* to_write = nullptr;
  bool finish = false;
  if (!writing_ && !broken_ && !slots_.empty() && slots_.front()->ready) {
    writing_ = true;
    to_write = &slots_.front()->reply;
  } else if (reads_done_ && computing_ == 0 && !writing_ &&
             (slots_.empty() || broken_) && !finished_) {
    finished_ = true;
    finish = true;
  }
  const bool broken = broken_;
  lock.unlock();
  if (to_write != nullptr) StartWrite(to_write);
  if (finish) Finish(broken ? grpc::Status::CANCELLED : grpc::Status::OK);
}

}  // namespace reluserve
