#include "server/http/request_body.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace reluserve {

void RequestBody::AlignedFree::operator()(char* bytes) const {
  ::operator delete[](bytes, std::align_val_t(kAlignment));
}

RequestBody::RequestBody(size_t expected_bytes, size_t header_bytes)
    : header_bytes_(header_bytes),
      offset_((kAlignment - header_bytes % kAlignment) % kAlignment) {
  Grow(expected_bytes);
}

void RequestBody::Grow(size_t at_least) {
  const size_t capacity = std::max(at_least, 2 * capacity_);
  std::unique_ptr<char, AlignedFree> bigger(static_cast<char*>(::operator new[](
      offset_ + capacity + kPadding, std::align_val_t(kAlignment))));
  if (size_ > 0)
    std::memcpy(bigger.get() + offset_, bytes_.get() + offset_, size_);
  std::memset(bigger.get() + offset_ + capacity, 0, kPadding);
  bytes_ = std::move(bigger);
  capacity_ = capacity;
}

void RequestBody::Append(const char* data, size_t size) {
  if (size_ + size > capacity_) Grow(size_ + size);
  std::memcpy(bytes_.get() + offset_ + size_, data, size);
  size_ += size;
}

std::string_view RequestBody::header() const {
  return {bytes_.get() + offset_, std::min(header_bytes_, size_)};
}

const char* RequestBody::binary() const {
  if (header_bytes_ >= size_) return nullptr;
  return bytes_.get() + offset_ + header_bytes_;
}

size_t RequestBody::binary_bytes() const {
  return size_ > header_bytes_ ? size_ - header_bytes_ : 0;
}

}  // namespace reluserve
