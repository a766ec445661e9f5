// The bare floor's ModelStreamInfer: every message read is answered with a
// prebuilt reply, in order, reads going on while replies are written.

#ifndef RELUSERVE_BENCH_ECHO_STREAM_H_
#define RELUSERVE_BENCH_ECHO_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace reluserve {

// Up to kMaxQueued replies wait for their write (as the server's
// --max-stream-pending); beyond, reading pauses. A message without a
// prebuilt reply gets one with `unmatched` as its error_message. Deletes
// itself when gRPC is done.
//
// Thread safety: gRPC's reactions may run on any threads at once; the
// queue and flags are guarded by one mutex.
class BareEchoStream final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // Sets `reply` for `request`; false when it has none.
  using Replier = std::function<bool(const grpc::ByteBuffer& request,
                                     grpc::ByteBuffer* reply)>;

  BareEchoStream(Replier replier, const std::string& unmatched);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  static constexpr size_t kMaxQueued = 16;

  // Unlocks, then starts what is due: the next read if `read`, a write, or
  // the finish.
  void Advance(bool read) ABSL_UNLOCK_FUNCTION(mutex_);

  const Replier replier_;
  const grpc::ByteBuffer unmatched_;  // a ModelStreamInferResponse
  grpc::ByteBuffer incoming_;         // only the read in progress
  absl::Mutex mutex_;
  std::deque<grpc::ByteBuffer> queued_
      ABSL_GUARDED_BY(mutex_);  // front: writing
  bool reading_ ABSL_GUARDED_BY(mutex_) = true;
  bool writing_ ABSL_GUARDED_BY(mutex_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mutex_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mutex_) = false;
  bool broken_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace reluserve

#endif  // RELUSERVE_BENCH_ECHO_STREAM_H_
