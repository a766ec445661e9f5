#include "client/tensor.h"

#include <cmath>
#include <limits>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace reluserve {

absl::StatusOr<int64_t> NumElements(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shape ", ShapeToString(shape), " has a negative dimension"));
    }
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          "shape ", ShapeToString(shape), " has too many elements"));
    }
    count *= dim;
  }
  return count;
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<Tensor> RandomNormalTensor(const std::vector<int64_t>& shape,
                                          uint64_t seed) {
  absl::StatusOr<int64_t> count = NumElements(shape);
  if (!count.ok()) return count.status();
  Tensor tensor;
  tensor.shape = shape;
  tensor.data.resize(static_cast<size_t>(*count));

  // mt19937_64's output is fixed by the standard; std::normal_distribution's
  // is not, hence Box-Muller on 53-bit uniforms.
  std::mt19937_64 engine(seed);
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  constexpr double kInv2To53 = 1.0 / 9007199254740992.0;
  for (size_t i = 0; i < tensor.data.size(); i += 2) {
    const double u1 = 1.0 - static_cast<double>(engine() >> 11) * kInv2To53;
    const double u2 = static_cast<double>(engine() >> 11) * kInv2To53;
    const double radius = std::sqrt(-2.0 * std::log(u1));  // u1 in (0, 1]
    tensor.data[i] = static_cast<float>(radius * std::cos(kTwoPi * u2));
    if (i + 1 < tensor.data.size()) {
      tensor.data[i + 1] = static_cast<float>(radius * std::sin(kTwoPi * u2));
    }
  }
  return tensor;
}

}  // namespace reluserve
