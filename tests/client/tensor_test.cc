#include "client/tensor.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace reluserve {
namespace {

TEST(NumElementsTest, CountsAndRefuses) {
  EXPECT_EQ(*NumElements({}), 1);
  EXPECT_EQ(*NumElements({2, 3, 4}), 24);
  EXPECT_EQ(*NumElements({0, 5}), 0);
  EXPECT_EQ(NumElements({2, -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NumElements({int64_t{1} << 32, int64_t{1} << 32}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ShapeToStringTest, Formats) {
  EXPECT_EQ(ShapeToString({}), "[]");
  EXPECT_EQ(ShapeToString({2, 3072}), "[2, 3072]");
}

TEST(RandomNormalTensorTest, SameSeedSameValuesOtherSeedOther) {
  absl::StatusOr<Tensor> a = RandomNormalTensor({3, 5}, 7);
  absl::StatusOr<Tensor> b = RandomNormalTensor({3, 5}, 7);
  absl::StatusOr<Tensor> c = RandomNormalTensor({3, 5}, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(a->data.size(), 15u);
  EXPECT_EQ(a->data, b->data);
  EXPECT_NE(a->data, c->data);
}

TEST(RandomNormalTensorTest, MatchesAnIndependentImplementation) {
  // std::mt19937_64(0) and Box-Muller (common/normal_random.h)
  // re-implemented in plain Python.
  absl::StatusOr<Tensor> t = RandomNormalTensor({5}, 0);
  ASSERT_TRUE(t.ok());
  const std::vector<double> expected = {
      1.9128044843673706, -0.09447956085205078, -2.0794079303741455,
      -1.461328148841858, 1.0357269048690796};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_NEAR(t->data[i], expected[i], 1e-6) << i;
  }
}

TEST(RandomNormalTensorTest, LooksStandardNormal) {
  absl::StatusOr<Tensor> t = RandomNormalTensor({100001}, 1);
  ASSERT_TRUE(t.ok());
  double sum = 0, sum_sq = 0;
  for (float v : t->data) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sum_sq += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(t->data.size());
  EXPECT_NEAR(sum / n, 0.0, 0.02);
  EXPECT_NEAR(sum_sq / n, 1.0, 0.02);
}

TEST(RandomNormalTensorTest, RefusesBadShapes) {
  EXPECT_EQ(RandomNormalTensor({-1, 3}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace reluserve
