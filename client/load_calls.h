// Inside reluserve-load: the call contexts. A unary ModelInfer call, or a
// ModelStreamInfer stream carrying any number of requests, each recording
// its answers into a Step and starting the replacement the step hands back.
// Not part of the library's interface (namespace load_internal).

#ifndef RELUSERVE_CLIENT_LOAD_CALLS_H_
#define RELUSERVE_CLIENT_LOAD_CALLS_H_

#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "client/load_step.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/client_callback.h"

namespace reluserve::load_internal {

// Starts one ModelInfer call for `ticket`, claimed with new_reactor (the
// step has counted the call). The call deletes itself when done.
void StartUnaryCall(Step* step, const Ticket& ticket);

// One ModelStreamInfer stream carrying any number of requests; responses
// are matched to requests in order. Owned by the step's registry from
// Open() until OnDone (and by whoever else holds a shared_ptr to it).
//
// Thread safety: Send(), Close() and Cancel*() may be called from any
// thread; mu_ guards the queues and flags and is never held while starting
// a gRPC operation.
class StreamConn final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  StreamConn(Step* step, int channel) : step_(step), channel_(channel) {}

  // Opens a stream; with `first`, sends that request on it.
  static std::shared_ptr<StreamConn> Open(Step* step, int channel,
                                          const std::optional<Ticket>& first);

  // Queues the request; false when the stream is closing (not sent).
  bool Send(const Ticket& ticket);

  // No more requests: half-closes once the queued ones are written.
  void Close();

  bool closing();

  // Cancels the stream when its oldest request was sent before `cutoff`;
  // its unanswered requests then count as DEADLINE_EXCEEDED.
  void CancelIfStale(Clock::time_point cutoff);

  void Cancel() { context_.TryCancel(); }

  void OnWriteDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  struct Pending {
    Ticket ticket;
    Clock::time_point sent;
  };

  Step* const step_;
  const int channel_;
  grpc::ClientContext context_;
  grpc::ByteBuffer read_;  // only the read in progress
  std::mutex mu_;
  std::deque<Pending> outstanding_;      // oldest first; guarded
  std::deque<grpc::ByteBuffer> writes_;  // front is being written; guarded
  bool writing_ = false;                 // guarded
  bool closing_ = false;                 // guarded
  bool writes_done_ = false;             // guarded
  bool timed_out_ = false;               // guarded
};

}  // namespace reluserve::load_internal

#endif  // RELUSERVE_CLIENT_LOAD_CALLS_H_
