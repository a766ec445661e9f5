#ifndef RELUSERVE_SERVER_CORE_PRECISION_H_
#define RELUSERVE_SERVER_CORE_PRECISION_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace reluserve {

// Element type of tensors on the wire: FP32, or bfloat16 (the upper half of
// an FP32, half the bytes).
enum class Precision { kFloat32, kBFloat16 };

inline size_t ElementBytes(Precision precision) {
  return precision == Precision::kBFloat16 ? 2 : 4;
}

// FP32 → bfloat16, rounding to nearest even; NaN stays NaN (a quiet one).
inline uint16_t ToBfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

inline float FromBfloat16(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float result;
  std::memcpy(&result, &bits, sizeof(result));
  return result;
}

inline void ToBfloat16(const float* in, uint16_t* out, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = ToBfloat16(in[i]);
}

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_CORE_PRECISION_H_
