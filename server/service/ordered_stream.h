#ifndef RELUSERVE_SERVER_SERVICE_ORDERED_STREAM_H_
#define RELUSERVE_SERVER_SERVICE_ORDERED_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "grpc_service.pb.h"

namespace reluserve {

// One ModelStreamInfer stream (Triton's shapes): every request message gets
// exactly one response message, in request order, however the answers
// complete; a failed request yields a response with error_message
// ("CODE: message") and the stream stays open. Reading goes on while
// earlier answers compute and are written. Deletes itself when gRPC is done.
//
// Thread safety: gRPC's reactions and the handler's `done` may run on any
// threads at once; shared state is guarded by one mutex.
class OrderedStreamReactor final
    : public grpc::ServerBidiReactor<inference::ModelInferRequest,
                                     inference::ModelStreamInferResponse> {
 public:
  using Done = std::function<void(const absl::Status&)>;
  // Answers `request` into `response` and calls `done` exactly once, on any
  // thread, possibly before returning. Both messages live until then.
  using Handler =
      std::function<void(const inference::ModelInferRequest& request,
                         inference::ModelInferResponse& response, Done done)>;

  explicit OrderedStreamReactor(Handler handler);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  struct Slot {
    inference::ModelInferRequest request;
    inference::ModelStreamInferResponse reply;
    bool ready = false;
  };

  // Starts the next write or finishes the stream, whichever is due. gRPC
  // calls are made after unlocking: a reaction may run on another thread and
  // take the lock meanwhile.
  void Advance(std::unique_lock<std::mutex>& lock);

  const Handler handler_;
  inference::ModelInferRequest incoming_;  // only the read in progress
  std::mutex mutex_;
  std::deque<std::unique_ptr<Slot>> slots_;  // oldest first; guarded
  int computing_ = 0;                        // guarded by mutex_
  bool reads_done_ = false;                  // guarded by mutex_
  bool writing_ = false;                     // guarded by mutex_
  bool broken_ = false;                      // guarded by mutex_
  bool finished_ = false;                    // guarded by mutex_
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_ORDERED_STREAM_H_
