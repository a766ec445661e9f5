#include "server/service/message_pool.h"

namespace reluserve {
namespace {

template <typename Strings>
size_t Capacity(const Strings& strings) {
  size_t bytes = 0;
  for (const std::string& data : strings) bytes += data.capacity();
  return bytes;
}

}  // namespace

class InferMessagePool::Holder final
    : public grpc::MessageHolder<inference::ModelInferRequest,
                                 inference::ModelInferResponse> {
 public:
  explicit Holder(InferMessagePool* pool) : pool_(pool) {
    set_request(&request_);
    set_response(&response_);
  }

  void Release() override { pool_->Recycle(this); }

  size_t TensorBytes() const {
    return Capacity(request_.raw_input_contents()) +
           Capacity(response_.raw_output_contents());
  }

  void Clear() {
    request_.Clear();
    response_.Clear();
  }

 private:
  InferMessagePool* const pool_;
  inference::ModelInferRequest request_;
  inference::ModelInferResponse response_;
};

InferMessagePool::InferMessagePool(size_t max_idle, size_t max_pooled_bytes)
    : max_idle_(max_idle), max_pooled_bytes_(max_pooled_bytes) {}

InferMessagePool::~InferMessagePool() = default;

grpc::MessageHolder<inference::ModelInferRequest,
                    inference::ModelInferResponse>*
InferMessagePool::AllocateMessages() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      Holder* holder = idle_.back().release();
      idle_.pop_back();
      return holder;
    }
  }
  return new Holder(this);
}

void InferMessagePool::Recycle(Holder* holder) {
  std::unique_ptr<Holder> owned(holder);
  if (owned->TensorBytes() > max_pooled_bytes_) return;
  owned->Clear();
  std::lock_guard<std::mutex> lock(mutex_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(owned));
}

size_t InferMessagePool::idle() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return idle_.size();
}

}  // namespace reluserve
