#ifndef RELUSERVE_SERVER_SERVICE_MESSAGE_POOL_H_
#define RELUSERVE_SERVER_SERVICE_MESSAGE_POOL_H_

#include <grpcpp/support/message_allocator.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "grpc_service.pb.h"

namespace reluserve {

// ModelInfer request/response pairs reused across calls. A cleared protobuf
// message keeps its strings and their capacity, so the next call parses its
// tensors into, and writes its outputs into, memory that is already
// allocated and faulted in, instead of megabytes of fresh pages per call.
// Pairs holding more than `max_pooled_bytes` of tensor data are freed
// rather than pooled, and at most `max_idle` pairs wait in the pool.
//
// Thread safety: gRPC allocates and releases from many threads at once.
class InferMessagePool final
    : public grpc::MessageAllocator<inference::ModelInferRequest,
                                    inference::ModelInferResponse> {
 public:
  InferMessagePool(size_t max_idle, size_t max_pooled_bytes);
  ~InferMessagePool() override;

  grpc::MessageHolder<inference::ModelInferRequest,
                      inference::ModelInferResponse>*
  AllocateMessages() override;

  size_t idle() const;

 private:
  class Holder;
  void Recycle(Holder* holder);

  const size_t max_idle_;
  const size_t max_pooled_bytes_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Holder>> idle_;  // guarded by mutex_
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_MESSAGE_POOL_H_
