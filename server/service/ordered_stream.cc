#include "server/service/ordered_stream.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/service/grpc_request.h"
#include "server/service/status_translation.h"

namespace reluserve {
namespace {

grpc::ByteBuffer ErrorReply(const absl::Status& status) {
  return StreamErrorReply(absl::StrCat(absl::StatusCodeToString(status.code()),
                                       ": ", status.message()));
}

}  // namespace

OrderedStreamReactor::OrderedStreamReactor(Handler handler,
                                           const Options& options)
    : handler_(std::move(handler)),
      options_(options),
      replies_(options.max_pending) {
  StartRead(&incoming_);
}

void OrderedStreamReactor::OnReadDone(bool ok) {
  if (!ok) return Act(replies_.ReadsEnded(absl::OkStatus()));
  ++messages_read_;
  auto slot = std::make_unique<Slot>();
  // Consumes incoming_, ready for the next read.
  if (!grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(
           &incoming_, &slot->request)
           .ok()) {
    return Act(replies_.ReadsEnded(absl::InvalidArgumentError(absl::StrCat(
        "message ", messages_read_,
        " of the stream could not be parsed as an "
        "inference.ModelInferRequest; the messages before it were answered, "
        "it and any later ones were not processed"))));
  }
  Replies::Actions actions;
  Slot* added = replies_.Add(std::move(slot), &actions);
  handler_(added->request, added->response,
           [this, added](const absl::Status& status, Sent sent) {
             Answer(added, status, std::move(sent));
           });
  if (actions.read) StartRead(&incoming_);
}

void OrderedStreamReactor::Answer(Slot* slot, const absl::Status& status,
                                  Sent sent) {
  // Until Answered only this thread touches the slot.
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
  slot->sent = std::move(sent);
  Act(replies_.Answered(slot));
}

void OrderedStreamReactor::OnCancel() { Act(replies_.Cancelled()); }

void OrderedStreamReactor::OnWriteDone(bool ok) {
  // Destroyed (its `sent` run) after the next gRPC calls are made.
  std::unique_ptr<Slot> written;
  Act(replies_.Written(ok, &written));
}

void OrderedStreamReactor::Act(const Replies::Actions& actions) {
  if (actions.read) StartRead(&incoming_);
  if (actions.write != nullptr) StartWrite(&actions.write->wire);
  if (actions.finish) Finish(ToGrpcStatus(actions.status));
}

}  // namespace reluserve
