#ifndef RELUSERVE_SERVER_SERVICE_ORDERED_STREAM_H_
#define RELUSERVE_SERVER_SERVICE_ORDERED_STREAM_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "grpc_service.pb.h"
#include "server/runtime/ordered_replies.h"
#include "server/service/wire_response.h"

namespace reluserve {

// One ModelStreamInfer stream (Triton's shapes): every request message gets
// exactly one response message, in request order, however the answers
// complete; a failed request yields a response with error_message
// ("CODE: message") and the stream stays open. Reading goes on while
// earlier answers compute and are written, up to `max_pending` messages read
// and not yet written; there reading pauses until a reply is written, so
// HTTP/2 flow control holds back a client that sends without reading.
//
// A message that cannot be parsed ends the stream: the messages before it
// are answered, then the stream finishes with INVALID_ARGUMENT saying which
// message it was; it and later messages are not processed. Each reply is
// put on the wire as soon as it is answered (its output bytes as they are,
// see WireResponse) and its request message freed; a reply above
// `max_reply_bytes` is replaced by an error_message rather than let gRPC end
// the stream. Deletes itself when gRPC is done.
//
// Thread safety: gRPC's reactions and the handler's `done` may run on any
// threads at once; what they share is OrderedReplies' (one mutex), and gRPC
// is called after it has decided.
class OrderedStreamReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  struct Options {
    // Messages read and not yet written (computing, answered or being
    // written); at least 1.
    size_t max_pending = 16;
    // The largest message gRPC may send on this stream (the server's send
    // limit).
    int64_t max_reply_bytes = INT_MAX;
  };
  // Called once the reply has been written, or dropped with the stream.
  using Sent = std::function<void()>;
  // `sent` may be empty.
  using Done = std::function<void(const absl::Status& status, Sent sent)>;
  // Answers `request` into `response` and calls `done` exactly once, on any
  // thread, possibly before returning. Both live until then.
  using Handler =
      std::function<void(const inference::ModelInferRequest& request,
                         WireResponse& response, Done done)>;

  OrderedStreamReactor(Handler handler, const Options& options);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  // The client went away: read nothing more (messages already buffered
  // would only be computed for nobody).
  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  struct Slot {
    ~Slot() {
      if (sent) sent();
    }
    inference::ModelInferRequest request;
    WireResponse response;
    grpc::ByteBuffer wire;  // the reply, as sent, once ready
    Sent sent;
  };
  using Replies = OrderedReplies<Slot>;

  // The handler's `done`: the reply into its wire bytes, then its turn.
  void Answer(Slot* slot, const absl::Status& status, Sent sent);
  // Starts what `actions` say is due: the next read, the next write, the
  // stream's end.
  void Act(const Replies::Actions& actions);

  const Handler handler_;
  const Options options_;
  grpc::ByteBuffer incoming_;  // only the read in progress
  int64_t messages_read_ = 0;  // only OnReadDone touches it
  Replies replies_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_ORDERED_STREAM_H_
