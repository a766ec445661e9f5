#include "server/core/linear_layer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "server/core/weights.h"
#include "tests/support/naive_reference.h"
#include "tests/support/tensor_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::RandomValues;
using ::reluserve::testing::RelativeError;

// The contract's fp32 tolerance: norm-wise relative error against the double
// reference.
constexpr double kFp32Tolerance = 1e-5;

LinearWeights RandomWeights(int64_t in_features, int64_t out_features,
                            uint64_t seed) {
  LinearWeights weights = MakeDefaultWeights(in_features, out_features, seed);
  // Varied biases exercise the bias path harder than the constant default.
  weights.bias = RandomValues(out_features, seed + 1);
  for (float& b : weights.bias) b *= 0.1f;
  return weights;
}

// Throws on failure: gtest reports the exception as the test's failure.
std::unique_ptr<LinearLayer> MakeLayer(const LinearWeights& weights,
                                       LinearLayerOptions options = {}) {
  absl::StatusOr<std::unique_ptr<LinearLayer>> layer =
      LinearLayer::Create(weights, options);
  if (!layer.ok()) throw std::runtime_error(layer.status().ToString());
  return std::move(*layer);
}

struct Outputs {
  std::vector<float> y, grad_x, grad_weight, grad_bias;
};

Outputs RunForwardBackward(const LinearLayer& layer, int64_t batch,
                           const std::vector<float>& x,
                           const std::vector<float>& grad_y) {
  const int64_t k = layer.in_features(), m = layer.out_features();
  Outputs out{std::vector<float>(batch * m), std::vector<float>(batch * k),
              std::vector<float>(m * k), std::vector<float>(m)};
  const absl::Status status = layer.ForwardBackward(
      batch, x.data(), grad_y.data(), out.y.data(),
      {out.grad_x.data(), out.grad_weight.data(), out.grad_bias.data()});
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

// (batch, in_features, out_features)
class LinearReluVsReference
    : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(LinearReluVsReference, ForwardMatches) {
  const auto [batch, k, m] = GetParam();
  const LinearWeights weights = RandomWeights(k, m, 7);
  const auto layer = MakeLayer(weights);
  const std::vector<float> x = RandomValues(batch * k, 11);

  std::vector<float> y(batch * m, -1.0f);
  ASSERT_TRUE(layer->Forward(batch, x.data(), y.data()).ok());

  const ReferenceResult expected = NaiveLinearRelu(weights, batch, x.data(),
                                                   /*grad_y=*/nullptr);
  EXPECT_LE(RelativeError(y, expected.y), kFp32Tolerance);
  for (float value : y) EXPECT_GE(value, 0.0f);
}

TEST_P(LinearReluVsReference, ForwardBackwardMatches) {
  const auto [batch, k, m] = GetParam();
  const LinearWeights weights = RandomWeights(k, m, 7);
  const auto layer = MakeLayer(weights);
  const std::vector<float> x = RandomValues(batch * k, 11);
  const std::vector<float> grad_y = RandomValues(batch * m, 13);

  const Outputs out = RunForwardBackward(*layer, batch, x, grad_y);
  const ReferenceResult expected =
      NaiveLinearRelu(weights, batch, x.data(), grad_y.data());
  EXPECT_LE(RelativeError(out.y, expected.y), kFp32Tolerance);
  EXPECT_LE(RelativeError(out.grad_x, expected.grad_x), kFp32Tolerance);
  EXPECT_LE(RelativeError(out.grad_weight, expected.grad_weight),
            kFp32Tolerance);
  EXPECT_LE(RelativeError(out.grad_bias, expected.grad_bias), kFp32Tolerance);

  // y has the same bits whether or not a gradient was asked for.
  std::vector<float> inference_y(batch * m);
  ASSERT_TRUE(layer->Forward(batch, x.data(), inference_y.data()).ok());
  EXPECT_EQ(0, std::memcmp(inference_y.data(), out.y.data(),
                           inference_y.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(
    DefaultAndOddDims, LinearReluVsReference,
    ::testing::Combine(::testing::Values(1, 7, 100, 256),
                       ::testing::Values(3072, 37), ::testing::Values(100, 13)),
    [](const auto& info) {
      return "N" + std::to_string(std::get<0>(info.param)) + "_K" +
             std::to_string(std::get<1>(info.param)) + "_M" +
             std::to_string(std::get<2>(info.param));
    });

std::vector<uint16_t> ToBf16(const std::vector<float>& values) {
  std::vector<uint16_t> rounded(values.size());
  ToBfloat16(values.data(), rounded.data(), values.size());
  return rounded;
}

std::vector<float> FromBf16(const std::vector<uint16_t>& values) {
  std::vector<float> widened;
  for (uint16_t v : values) widened.push_back(FromBfloat16(v));
  return widened;
}

// bfloat16 inputs run oneDNN's bf16 kernels: bf16 x, grad_y and weights,
// FP32 accumulation and outputs. Against a reference fed the same bf16
// values the error is fp32's; against the unrounded FP32 problem it is
// bfloat16's 8-bit mantissa (≈ 2⁻⁹ per value).
TEST_P(LinearReluVsReference, Bfloat16MatchesReferenceOnRoundedValues) {
  const auto [batch, k, m] = GetParam();
  const LinearWeights weights = RandomWeights(k, m, 7);
  const auto layer = MakeLayer(weights);
  const std::vector<uint16_t> x = ToBf16(RandomValues(batch * k, 11));
  const std::vector<uint16_t> grad_y = ToBf16(RandomValues(batch * m, 13));

  Outputs out{std::vector<float>(batch * m), std::vector<float>(batch * k),
              std::vector<float>(m * k), std::vector<float>(m)};
  ASSERT_TRUE(layer
                  ->ForwardBackward(batch, x.data(), grad_y.data(),
                                    Precision::kBFloat16, out.y.data(),
                                    {out.grad_x.data(), out.grad_weight.data(),
                                     out.grad_bias.data()})
                  .ok());
  LinearWeights rounded = weights;
  rounded.weight = FromBf16(ToBf16(weights.weight));
  const std::vector<float> x_wide = FromBf16(x), grad_y_wide = FromBf16(grad_y);
  const ReferenceResult expected =
      NaiveLinearRelu(rounded, batch, x_wide.data(), grad_y_wide.data());
  EXPECT_LE(RelativeError(out.y, expected.y), kFp32Tolerance);
  EXPECT_LE(RelativeError(out.grad_x, expected.grad_x), kFp32Tolerance);
  EXPECT_LE(RelativeError(out.grad_weight, expected.grad_weight),
            kFp32Tolerance);
  EXPECT_LE(RelativeError(out.grad_bias, expected.grad_bias), kFp32Tolerance);

  // Forward-only gives the same y.
  std::vector<float> y(batch * m);
  ASSERT_TRUE(
      layer->Forward(batch, x.data(), Precision::kBFloat16, y.data()).ok());
  EXPECT_EQ(y, out.y);

  // Against the unrounded FP32 problem: bfloat16's precision.
  const std::vector<float> x_fp32 = RandomValues(batch * k, 11);
  const ReferenceResult exact =
      NaiveLinearRelu(weights, batch, x_fp32.data(), nullptr);
  EXPECT_LE(RelativeError(y, exact.y), 1e-2);
}

// ReLU's derivative is exactly 0 where y == 0, whatever grad_y says.
TEST(LinearReluTest, GradientIsExactlyZeroWhereOutputIsZero) {
  const LinearWeights weights = RandomWeights(3072, 100, 3);
  const auto layer = MakeLayer(weights);
  const std::vector<float> x = RandomValues(3072, 5);
  const std::vector<float> grad_y(100, 1.0f);
  // With one row, grad_bias is the masked upstream gradient itself.
  const Outputs out = RunForwardBackward(*layer, 1, x, grad_y);
  int zeros = 0;
  for (int m = 0; m < 100; ++m) {
    if (out.y[m] == 0.0f) {
      ++zeros;
      EXPECT_EQ(out.grad_bias[m], 0.0f) << "unit " << m;
      for (int k = 0; k < 3072; ++k) {
        ASSERT_EQ(out.grad_weight[m * 3072 + k], 0.0f) << m << "," << k;
      }
    } else {
      EXPECT_EQ(out.grad_bias[m], 1.0f) << "unit " << m;
    }
  }
  // Random inputs leave roughly half of the units dead; the check above must
  // have seen both kinds.
  EXPECT_GT(zeros, 10);
  EXPECT_LT(zeros, 90);
}

// Central differences of L = Σ grad_y ⊙ y in double precision, against the
// gradients oneDNN computes in fp32.
TEST(LinearReluTest, GradientsMatchFiniteDifferences) {
  constexpr int64_t kBatch = 3, kIn = 5, kOut = 4;
  const LinearWeights weights = RandomWeights(kIn, kOut, 21);
  const std::vector<float> x = RandomValues(kBatch * kIn, 22);
  const std::vector<float> grad_y = RandomValues(kBatch * kOut, 23);
  const auto layer = MakeLayer(weights);
  const Outputs out = RunForwardBackward(*layer, kBatch, x, grad_y);

  std::vector<double> xd(x.begin(), x.end());
  std::vector<double> wd(weights.weight.begin(), weights.weight.end());
  std::vector<double> bd(weights.bias.begin(), weights.bias.end());
  double closest_kink = std::numeric_limits<double>::infinity();
  auto loss = [&] {
    double total = 0.0;
    for (int64_t n = 0; n < kBatch; ++n) {
      for (int64_t m = 0; m < kOut; ++m) {
        double pre = bd[m];
        for (int64_t k = 0; k < kIn; ++k) {
          pre += xd[n * kIn + k] * wd[m * kIn + k];
        }
        closest_kink = std::min(closest_kink, std::abs(pre));
        total += grad_y[n * kOut + m] * ReferenceRelu(pre);
      }
    }
    return total;
  };
  loss();
  constexpr double kStep = 1e-6;
  // A difference across ReLU's kink would not be a derivative.
  ASSERT_GT(closest_kink, 100 * kStep);

  auto numeric = [&](std::vector<double>& params, size_t i) {
    const double saved = params[i];
    params[i] = saved + kStep;
    const double up = loss();
    params[i] = saved - kStep;
    const double down = loss();
    params[i] = saved;
    return (up - down) / (2 * kStep);
  };
  auto expect_close = [&](const std::vector<float>& analytic,
                          std::vector<double>& params, const char* name) {
    std::vector<double> numerical(params.size());
    for (size_t i = 0; i < params.size(); ++i) {
      numerical[i] = numeric(params, i);
    }
    EXPECT_LE(RelativeError(analytic, numerical), 1e-5) << name;
  };
  expect_close(out.grad_x, xd, "grad_x");
  expect_close(out.grad_weight, wd, "grad_weight");
  expect_close(out.grad_bias, bd, "grad_bias");
}

TEST(LinearReluTest, SkippedGradientsLeaveTheRestIntact) {
  const LinearWeights weights = RandomWeights(37, 13, 8);
  const auto layer = MakeLayer(weights);
  const std::vector<float> x = RandomValues(7 * 37, 9);
  const std::vector<float> grad_y = RandomValues(7 * 13, 10);
  const Outputs all = RunForwardBackward(*layer, 7, x, grad_y);

  std::vector<float> grad_weight(13 * 37);
  ASSERT_TRUE(layer
                  ->ForwardBackward(7, x.data(), grad_y.data(),
                                    /*y=*/nullptr,
                                    {nullptr, grad_weight.data(), nullptr})
                  .ok());
  EXPECT_EQ(grad_weight, all.grad_weight);

  std::vector<float> grad_x(7 * 37);
  ASSERT_TRUE(layer
                  ->ForwardBackward(7, x.data(), grad_y.data(), nullptr,
                                    {grad_x.data(), nullptr, nullptr})
                  .ok());
  EXPECT_EQ(grad_x, all.grad_x);
}

TEST(LinearReluTest, NanAndInfinityFollowIeeeLikePyTorch) {
  LinearWeights weights;
  weights.in_features = 2;
  weights.out_features = 3;
  weights.weight = {1.0f,  0.0f,   // y0 = relu(x0)
                    -1.0f, 0.0f,   // y1 = relu(-x0)
                    0.0f,  1.0f};  // y2 = relu(x1)
  weights.bias = {0.0f, 0.0f, 0.0f};
  const auto layer = MakeLayer(weights);
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {inf, 1.0f,  //
                                std::nanf(""), 1.0f};
  std::vector<float> y(6);
  ASSERT_TRUE(layer->Forward(2, x.data(), y.data()).ok());
  EXPECT_EQ(y[0], inf);
  EXPECT_EQ(y[1], 0.0f);  // relu(-inf) = 0
  // 0 · inf and 0 · NaN are NaN in IEEE arithmetic; NaN survives ReLU.
  EXPECT_TRUE(std::isnan(y[2]));
  for (int i = 3; i < 6; ++i) EXPECT_TRUE(std::isnan(y[i])) << i;
}

// Both precisions of the backward pass, for the NaN and Inf tests below.
class LinearReluNonFinite : public ::testing::TestWithParam<Precision> {
 protected:
  // ForwardBackward on FP32 `x` and `grad_y`, rounded to bfloat16 first
  // when the parameter says so.
  Outputs Run(const LinearLayer& layer, int64_t batch,
              const std::vector<float>& x, const std::vector<float>& grad_y) {
    if (GetParam() == Precision::kFloat32) {
      return RunForwardBackward(layer, batch, x, grad_y);
    }
    const int64_t k = layer.in_features(), m = layer.out_features();
    Outputs out{std::vector<float>(batch * m), std::vector<float>(batch * k),
                std::vector<float>(m * k), std::vector<float>(m)};
    const std::vector<uint16_t> x_bf16 = ToBf16(x),
                                grad_y_bf16 = ToBf16(grad_y);
    const absl::Status status = layer.ForwardBackward(
        batch, x_bf16.data(), grad_y_bf16.data(), Precision::kBFloat16,
        out.y.data(),
        {out.grad_x.data(), out.grad_weight.data(), out.grad_bias.data()});
    EXPECT_TRUE(status.ok()) << status;
    return out;
  }

  // y alone, in the same precision.
  std::vector<float> Forward(const LinearLayer& layer, int64_t batch,
                             const std::vector<float>& x) {
    std::vector<float> y(batch * layer.out_features());
    const absl::Status status =
        GetParam() == Precision::kFloat32
            ? layer.Forward(batch, x.data(), y.data())
            : layer.Forward(batch, ToBf16(x).data(), Precision::kBFloat16,
                            y.data());
    EXPECT_TRUE(status.ok()) << status;
    return y;
  }

  // What the layer computes from: the inputs as the chosen precision holds
  // them.
  std::vector<float> AsComputed(const std::vector<float>& values) const {
    return GetParam() == Precision::kFloat32 ? values
                                             : FromBf16(ToBf16(values));
  }
};

// Value for value, with NaN matching NaN (and nothing else).
void ExpectSameValues(const std::vector<float>& actual,
                      const std::vector<double>& expected, const char* name) {
  ASSERT_EQ(actual.size(), expected.size()) << name;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(actual[i]))
          << name << "[" << i << "] = " << actual[i] << ", expected NaN";
    } else {
      EXPECT_EQ(actual[i], expected[i]) << name << "[" << i << "]";
    }
  }
}

// The contract's g = grad_y ⊙ 1[y > 0] is a select: 0 where y is NaN and 0
// where y = 0, whatever grad_y holds there (NaN, ±Inf), never 0·Inf = NaN.
// Hand-made so that every value is exact in both precisions.
TEST_P(LinearReluNonFinite, BackwardIsASelectAtNanAndInfinity) {
  LinearWeights weights;
  weights.in_features = 2;
  weights.out_features = 3;
  weights.weight = {1.0f,  0.0f,   // y0 = relu(x0)
                    -1.0f, 0.0f,   // y1 = relu(-x0)
                    0.0f,  1.0f};  // y2 = relu(x1)
  weights.bias = {0.0f, 0.0f, 0.0f};
  const auto layer = MakeLayer(weights);
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {
      inf,   1.0f,  // y = {inf, 0, NaN}: 0·inf in y2
      -1.0f, 2.0f,  // y = {0, 1, 2}
      nan,   1.0f,  // y = {NaN, NaN, NaN}
  };
  const std::vector<float> grad_y = {
      2.0f, inf,  3.0f,  // g = {2, 0 (not 0·inf), 0 (y NaN)}
      nan,  5.0f, 7.0f,  // g = {0 (not 0·NaN), 5, 7}
      1.0f, -inf, nan,   // g = {0, 0, 0}: y is NaN
  };
  const Outputs out = Run(*layer, 3, x, grad_y);

  // g per row: {2, 0, 0}, {0, 5, 7}, {0, 0, 0}.
  ExpectSameValues(out.grad_bias, {2.0, 5.0, 7.0}, "grad_bias");
  // g·W: {2, 0}, {-5, 7}, {0, 0}.
  ExpectSameValues(out.grad_x, {2.0, 0.0, -5.0, 7.0, 0.0, 0.0}, "grad_x");
  // gᵀ·x is a product: x's column 0 holds inf and NaN, so 0·inf and 0·NaN
  // make that column NaN, as in any IEEE matrix product. Column 1 is finite.
  const double qnan = std::numeric_limits<double>::quiet_NaN();
  ExpectSameValues(out.grad_weight, {qnan, 2.0, qnan, 10.0, qnan, 14.0},
                   "grad_weight");

  // The naive reference implements the same select.
  const ReferenceResult expected =
      NaiveLinearRelu(weights, 3, x.data(), grad_y.data());
  ExpectSameValues(out.y, expected.y, "y");
  ExpectSameValues(out.grad_x, expected.grad_x, "reference grad_x");
  ExpectSameValues(out.grad_weight, expected.grad_weight,
                   "reference grad_weight");
  ExpectSameValues(out.grad_bias, expected.grad_bias, "reference grad_bias");
}

// The default layer with NaN, +Inf and -Inf in grad_y at every unit whose
// y is 0: not one of them may reach the gradients (an eltwise multiply made
// whole rows of grad_x NaN here).
TEST_P(LinearReluNonFinite, NonFiniteGradYWhereOutputIsZeroNeverLeaks) {
  constexpr int64_t kBatch = 2, kIn = 3072, kOut = 100;
  const LinearWeights weights = RandomWeights(kIn, kOut, 51);
  const auto layer = MakeLayer(weights);
  const std::vector<float> x = RandomValues(kBatch * kIn, 52);
  const std::vector<float> y = Forward(*layer, kBatch, x);
  std::vector<float> grad_y = RandomValues(kBatch * kOut, 53);
  const float kPoison[] = {std::numeric_limits<float>::quiet_NaN(),
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity()};
  int poisoned = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] == 0.0f) grad_y[i] = kPoison[poisoned++ % 3];
  }
  ASSERT_GT(poisoned, 20);

  const Outputs out = Run(*layer, kBatch, x, grad_y);
  const std::pair<const char*, const std::vector<float>*> gradients[] = {
      {"grad_x", &out.grad_x},
      {"grad_weight", &out.grad_weight},
      {"grad_bias", &out.grad_bias}};
  for (const auto& [name, values] : gradients) {
    int non_finite = 0;
    for (float v : *values) non_finite += !std::isfinite(v);
    EXPECT_EQ(non_finite, 0) << name;
  }
  LinearWeights computed = weights;
  computed.weight = AsComputed(weights.weight);
  const std::vector<float> x_computed = AsComputed(x),
                           grad_y_computed = AsComputed(grad_y);
  const ReferenceResult expected = NaiveLinearRelu(
      computed, kBatch, x_computed.data(), grad_y_computed.data());
  EXPECT_LE(RelativeError(out.grad_x, expected.grad_x), kFp32Tolerance);
  EXPECT_LE(RelativeError(out.grad_weight, expected.grad_weight),
            kFp32Tolerance);
  EXPECT_LE(RelativeError(out.grad_bias, expected.grad_bias), kFp32Tolerance);
  // grad_bias counts only the live units: where y == 0 it is exactly 0.
  for (int64_t m = 0; m < kOut; ++m) {
    bool live = false;
    for (int64_t n = 0; n < kBatch; ++n) live |= out.y[n * kOut + m] > 0.0f;
    if (!live) {
      EXPECT_EQ(out.grad_bias[m], 0.0f) << "unit " << m;
    }
  }
}

// Where y is NaN the gradient is 0 (PyTorch's threshold_backward would pass
// grad_y through there): a NaN in a row of x zeroes that row's g, so its
// grad_x row is 0 and grad_bias holds the other rows only.
TEST_P(LinearReluNonFinite, NanOutputGetsZeroGradient) {
  constexpr int64_t kBatch = 3, kIn = 37, kOut = 13;
  const LinearWeights weights = RandomWeights(kIn, kOut, 61);
  const auto layer = MakeLayer(weights);
  std::vector<float> x = RandomValues(kBatch * kIn, 62);
  x[1 * kIn + 5] = std::numeric_limits<float>::quiet_NaN();  // row 1: y NaN
  std::vector<float> grad_y = RandomValues(kBatch * kOut, 63);
  grad_y[1 * kOut + 2] = std::numeric_limits<float>::infinity();

  const Outputs out = Run(*layer, kBatch, x, grad_y);
  for (int64_t m = 0; m < kOut; ++m) {
    EXPECT_TRUE(std::isnan(out.y[1 * kOut + m])) << m;
  }
  for (int64_t k = 0; k < kIn; ++k) {
    EXPECT_EQ(out.grad_x[1 * kIn + k], 0.0f) << k;
  }
  for (float v : out.grad_bias) EXPECT_TRUE(std::isfinite(v));
  LinearWeights computed = weights;
  computed.weight = AsComputed(weights.weight);
  const std::vector<float> x_computed = AsComputed(x),
                           grad_y_computed = AsComputed(grad_y);
  const ReferenceResult expected = NaiveLinearRelu(
      computed, kBatch, x_computed.data(), grad_y_computed.data());
  EXPECT_LE(RelativeError(out.grad_x, expected.grad_x), kFp32Tolerance);
  EXPECT_LE(RelativeError(out.grad_bias, expected.grad_bias), kFp32Tolerance);
  // grad_weight = gᵀ·x: column 5 is 0·NaN = NaN (IEEE), the rest finite.
  for (int64_t m = 0; m < kOut; ++m) {
    for (int64_t k = 0; k < kIn; ++k) {
      const double want = expected.grad_weight[m * kIn + k];
      const float got = out.grad_weight[m * kIn + k];
      ASSERT_EQ(std::isnan(got), k == 5) << m << "," << k;
      ASSERT_EQ(std::isnan(want), k == 5) << m << "," << k;
      if (k != 5) {
        EXPECT_NEAR(got, want, 1e-5 * (1.0 + std::abs(want))) << m << "," << k;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BothPrecisions, LinearReluNonFinite,
                         ::testing::Values(Precision::kFloat32,
                                           Precision::kBFloat16),
                         [](const auto& info) {
                           return info.param == Precision::kFloat32
                                      ? std::string("FP32")
                                      : std::string("BF16");
                         });

// 8 threads on one layer whose cache holds 2 batch sizes while 6 are in use:
// primitives are built, evicted and rebuilt concurrently, and every result
// must still match, to the bit, a serial run on a separate layer.
TEST(LinearReluTest, ConcurrentCallersGetTheSameBitsAsSerialCalls) {
  const LinearWeights weights = RandomWeights(3072, 100, 31);
  const std::vector<int64_t> batches = {1, 3, 7, 32, 100, 5};
  std::vector<std::vector<float>> xs, grad_ys;
  std::vector<Outputs> serial;
  {
    const auto serial_layer = MakeLayer(weights);
    for (int64_t batch : batches) {
      xs.push_back(RandomValues(batch * 3072, 100 + batch));
      grad_ys.push_back(RandomValues(batch * 100, 200 + batch));
      serial.push_back(
          RunForwardBackward(*serial_layer, batch, xs.back(), grad_ys.back()));
    }
  }

  LinearLayerOptions small_cache;
  small_cache.max_cached_batch_sizes = 2;
  const auto layer = MakeLayer(weights, small_cache);
  constexpr int kThreads = 8, kRounds = 6;
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        const size_t i = (t + round) % batches.size();
        const Outputs out =
            RunForwardBackward(*layer, batches[i], xs[i], grad_ys[i]);
        std::vector<float> y(batches[i] * 100);
        EXPECT_TRUE(layer->Forward(batches[i], xs[i].data(), y.data()).ok());
        if (out.y != serial[i].y || y != serial[i].y ||
            out.grad_x != serial[i].grad_x ||
            out.grad_weight != serial[i].grad_weight ||
            out.grad_bias != serial[i].grad_bias) {
          ++mismatches[t];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << t;
}

TEST(LinearReluTest, EvictedBatchSizesAreRebuiltCorrectly) {
  const LinearWeights weights = RandomWeights(37, 13, 41);
  LinearLayerOptions options;
  options.max_cached_batch_sizes = 2;
  const auto layer = MakeLayer(weights, options);
  for (int64_t batch : {1, 2, 3, 4, 1, 3}) {
    const std::vector<float> x = RandomValues(batch * 37, batch);
    std::vector<float> y(batch * 13);
    ASSERT_TRUE(layer->Forward(batch, x.data(), y.data()).ok());
    const ReferenceResult expected =
        NaiveLinearRelu(weights, batch, x.data(), nullptr);
    EXPECT_LE(RelativeError(y, expected.y), kFp32Tolerance) << batch;
  }
}

TEST(LinearReluTest, RejectsBadArguments) {
  const auto layer = MakeLayer(RandomWeights(37, 13, 1));
  std::vector<float> x(37), y(13);
  EXPECT_EQ(layer->Forward(0, x.data(), y.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(layer->Forward(1, nullptr, y.data()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(layer->ForwardBackward(1, x.data(), nullptr, y.data(), {}).code(),
            absl::StatusCode::kInvalidArgument);

  LinearWeights mismatched = RandomWeights(37, 13, 1);
  mismatched.bias.pop_back();
  EXPECT_EQ(LinearLayer::Create(mismatched).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LinearReluTest, ReportsTheDispatchedIsa) {
  EXPECT_NE(LinearLayer::CpuIsaName(), "unknown");
}

}  // namespace
}  // namespace reluserve
