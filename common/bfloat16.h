#ifndef RELUSERVE_COMMON_BFLOAT16_H_
#define RELUSERVE_COMMON_BFLOAT16_H_

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace reluserve {

// FP32 → bfloat16 (the upper half of an FP32), rounding to nearest even: add
// 0x7fff plus the lowest kept bit; a carry into the exponent is the correct
// rounding (up to Inf for the largest values). NaN stays NaN: truncating
// could clear every mantissa bit left and make it Inf, so a quiet bit is set.
inline uint16_t ToBfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// Exact: every bfloat16 is an FP32.
inline float FromBfloat16(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float result;
  std::memcpy(&result, &bits, sizeof(result));
  return result;
}

inline void ToBfloat16(const float* in, uint16_t* out, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = ToBfloat16(in[i]);
}

inline void FromBfloat16(const uint16_t* in, float* out, size_t count) {
  for (size_t i = 0; i < count; ++i) out[i] = FromBfloat16(in[i]);
}

}  // namespace reluserve

#endif  // RELUSERVE_COMMON_BFLOAT16_H_
