#ifndef RELUSERVE_SERVER_SERVICE_ORDERED_STREAM_H_
#define RELUSERVE_SERVER_SERVICE_ORDERED_STREAM_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "grpc_service.pb.h"
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
// threads at once; shared state is guarded by one mutex.
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
    bool ready = false;
  };

  // The handler's `done`: the reply into its wire bytes, then Advance.
  void Answer(Slot* slot, const absl::Status& status, Sent sent);
  // Starts the next write or finishes the stream, whichever is due, and
  // resumes reading when `read` (set under the lock by the caller). gRPC
  // calls are made after unlocking: a reaction may run on another thread and
  // take the lock meanwhile.
  void Advance(std::unique_lock<std::mutex>& lock, bool read = false);
  // Whether a paused read may start now; marks it started. Needs the lock.
  bool MayRead();

  const Handler handler_;
  const Options options_;
  grpc::ByteBuffer incoming_;  // only the read in progress
  int64_t messages_read_ = 0;  // only OnReadDone touches it
  std::mutex mutex_;
  std::deque<std::unique_ptr<Slot>> slots_;  // oldest first; guarded
  int computing_ = 0;                        // guarded by mutex_
  bool reading_ = true;                      // a read is in progress; guarded
  bool reads_done_ = false;                  // guarded by mutex_
  grpc::Status read_error_;  // a message could not be parsed; guarded
  bool writing_ = false;     // guarded by mutex_
  bool broken_ = false;      // guarded by mutex_
  bool cancelled_ = false;   // guarded by mutex_
  bool finished_ = false;    // guarded by mutex_
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_ORDERED_STREAM_H_
