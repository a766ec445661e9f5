#ifndef RELUSERVE_CLIENT_TENSOR_H_
#define RELUSERVE_CLIENT_TENSOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace reluserve {

// A dense FP32 tensor: `data` holds the elements in row-major order.
// A plain value type: no synchronisation, copy or move freely.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// The number of elements of `shape` (1 for rank 0). InvalidArgument for a
// negative dimension or a product that overflows int64.
absl::StatusOr<int64_t> NumElements(const std::vector<int64_t>& shape);

// "[2, 3072]", as the server's messages write shapes.
std::string ShapeToString(const std::vector<int64_t>& shape);

// A tensor of i.i.d. standard normal N(0, 1) values drawn from
// std::mt19937_64(seed) through our own Box-Muller transform, so one seed gives
// the same values with every compiler and standard library.
// InvalidArgument when `shape` is not a valid shape.
absl::StatusOr<Tensor> RandomNormalTensor(const std::vector<int64_t>& shape,
                                          uint64_t seed);

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_TENSOR_H_
