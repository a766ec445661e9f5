#ifndef RELUSERVE_TESTS_SUPPORT_TENSOR_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_TENSOR_TESTING_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace reluserve::testing {

// Uniform values in [-1, 1) drawn from a fixed-output generator, so a test
// sees the same inputs on every machine.
inline std::vector<float> RandomValues(size_t count, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::vector<float> values(count);
  for (float& value : values) {
    value = static_cast<float>(
        static_cast<double>(generator() >> 11) * 0x1.0p-52 - 1.0);
  }
  return values;
}

// `values` as raw little-endian FP32 bytes, as tensors travel on the wire
// and in safetensors files.
inline std::string FloatBytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(float));
}

// ‖actual − expected‖₂ / ‖expected‖₂ (the absolute error when expected is 0).
template <typename Actual>
double RelativeError(const std::vector<Actual>& actual,
                     const std::vector<double>& expected) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double delta = static_cast<double>(actual[i]) - expected[i];
    diff += delta * delta;
    norm += expected[i] * expected[i];
  }
  return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_TENSOR_TESTING_H_
