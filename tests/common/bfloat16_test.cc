#include "common/bfloat16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "common/normal_random.h"

namespace reluserve {
namespace {

float FromBits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

TEST(Bfloat16Test, KnownBitPatterns) {
  EXPECT_EQ(ToBfloat16(0.0f), 0x0000);
  EXPECT_EQ(ToBfloat16(-0.0f), 0x8000);
  EXPECT_EQ(ToBfloat16(1.0f), 0x3f80);
  EXPECT_EQ(ToBfloat16(-2.0f), 0xc000);
  EXPECT_EQ(ToBfloat16(0.5f), 0x3f00);
  EXPECT_EQ(ToBfloat16(3.140625f), 0x4049);  // exactly representable
  EXPECT_EQ(ToBfloat16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(ToBfloat16(-std::numeric_limits<float>::infinity()), 0xff80);
  // The smallest subnormal float is below half a bf16 subnormal step.
  EXPECT_EQ(ToBfloat16(FromBits(0x00000001)), 0x0000);
  EXPECT_EQ(ToBfloat16(FromBits(0x00010000)), 0x0001);
}

TEST(Bfloat16Test, RoundsToNearestTiesToEven) {
  // 1 + 2^-8 lies exactly between 0x3f80 and 0x3f81: ties go to even 0x3f80.
  EXPECT_EQ(ToBfloat16(FromBits(0x3f808000)), 0x3f80);
  // 0x3f818000 lies between 0x3f81 and 0x3f82: even is 0x3f82.
  EXPECT_EQ(ToBfloat16(FromBits(0x3f818000)), 0x3f82);
  // Just above and below the tie.
  EXPECT_EQ(ToBfloat16(FromBits(0x3f808001)), 0x3f81);
  EXPECT_EQ(ToBfloat16(FromBits(0x3f807fff)), 0x3f80);
  // Negative values round the magnitude the same way.
  EXPECT_EQ(ToBfloat16(FromBits(0xbf808000)), 0xbf80);
  EXPECT_EQ(ToBfloat16(FromBits(0xbf818000)), 0xbf82);
  // A carry into the exponent: 0x3fffffff rounds up to 2.0.
  EXPECT_EQ(ToBfloat16(FromBits(0x3fffffff)), 0x4000);
  // The largest float rounds to +Inf, as IEEE round-to-nearest does.
  EXPECT_EQ(ToBfloat16(std::numeric_limits<float>::max()), 0x7f80);
  // The largest bf16 stays itself.
  EXPECT_EQ(ToBfloat16(FromBits(0x7f7f0000)), 0x7f7f);
}

TEST(Bfloat16Test, NaNStaysNaN) {
  const uint32_t nans[] = {0x7fc00000, 0xffc00000, 0x7f800001,
                           0xff800001, 0x7fbfffff, 0x7f80ffff};
  for (uint32_t bits : nans) {
    const uint16_t half = ToBfloat16(FromBits(bits));
    EXPECT_TRUE(std::isnan(FromBfloat16(half))) << std::hex << bits;
    EXPECT_EQ(half & 0x8000, (bits >> 16) & 0x8000) << "sign kept";
  }
}

TEST(Bfloat16Test, RelativeErrorAtMostHalfAnUlp) {
  std::vector<float> values(10000);
  FillNormal(5, 1.0, values.data(), values.size());
  for (float value : values) {
    const float rounded = FromBfloat16(ToBfloat16(value));
    EXPECT_LE(std::fabs(rounded - value), std::fabs(value) * 0x1.0p-8) << value;
  }
}

TEST(Bfloat16Test, ArraysConvertElementByElement) {
  const float in[] = {1.0f, -2.0f, 0.5f};
  uint16_t out[3] = {};
  ToBfloat16(in, out, 3);
  EXPECT_EQ(out[0], 0x3f80);
  EXPECT_EQ(out[1], 0xc000);
  EXPECT_EQ(out[2], 0x3f00);
}

}  // namespace
}  // namespace reluserve
