#ifndef RELUSERVE_TESTS_SUPPORT_BYTE_BUFFER_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_BYTE_BUFFER_TESTING_H_

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace reluserve::testing {

// Every slice of `buffer`, in order, as one string. Throws if the buffer
// cannot be read (gtest reports it as the test's failure).
inline std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) {
    throw std::runtime_error("cannot read the ByteBuffer's slices");
  }
  std::string bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_BYTE_BUFFER_TESTING_H_
