#ifndef RELUSERVE_SERVER_HTTP_REQUEST_BODY_H_
#define RELUSERVE_SERVER_HTTP_REQUEST_BODY_H_

#include <cstddef>
#include <memory>
#include <string_view>

namespace reluserve {

// An infer request's body as it arrives: a JSON header and, with Triton's
// binary tensor extension, the binary inputs' bytes right after it. Laid
// out so that the binary section starts 64-byte aligned (the model reads it
// in place, as it reads gRPC's raw contents) and the header is followed by
// readable padding (simdjson parses it without a copy).
//
// Thread safety: none; one request's thread uses it.
class RequestBody {
 public:
  // Room for `expected_bytes` (the Content-Length; more are taken as they
  // come) of which the first `header_bytes` are the JSON header (the whole
  // body when there is no binary section).
  RequestBody(size_t expected_bytes, size_t header_bytes);

  void Append(const char* data, size_t size);

  size_t size() const { return size_; }
  size_t header_bytes() const { return header_bytes_; }
  // The JSON header (at most size() bytes), followed by at least kPadding
  // readable bytes.
  std::string_view header() const;
  // What follows the header; null when nothing does.
  const char* binary() const;
  size_t binary_bytes() const;

  // header_bytes for a body that is all JSON.
  static constexpr size_t kWholeBody = static_cast<size_t>(-1);
  static constexpr size_t kAlignment = 64;
  static constexpr size_t kPadding = 64;  // >= SIMDJSON_PADDING

 private:
  struct AlignedFree {
    void operator()(char* bytes) const;
  };
  void Grow(size_t at_least);

  size_t header_bytes_;
  size_t offset_;  // where the header starts, so the binary part is aligned
  size_t capacity_ = 0;
  size_t size_ = 0;
  std::unique_ptr<char, AlignedFree> bytes_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_HTTP_REQUEST_BODY_H_
