#include "server/core/sequential_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/bfloat16.h"
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

// A stack with these widths (widths[0] = K), ReLU after every layer unless
// `last_relu` is false, the layers in `no_bias` without a bias. Modules are
// numbered as nn.Sequential(Linear, ReLU, Linear, …) numbers them.
std::vector<SequentialLayerSpec> Stack(const std::vector<int64_t>& widths,
                                       bool last_relu = true,
                                       const std::vector<size_t>& no_bias = {},
                                       uint64_t seed = 7) {
  std::vector<SequentialLayerSpec> layers;
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    SequentialLayerSpec layer;
    layer.weights = MakeDefaultWeights(widths[i], widths[i + 1], seed + i);
    layer.weights.bias = RandomValues(widths[i + 1], seed + 100 + i);
    for (float& b : layer.weights.bias) b *= 0.1f;
    for (size_t skip : no_bias) {
      if (skip == i) layer.weights.bias.clear();
    }
    layer.relu = last_relu || i + 2 < widths.size();
    layer.module = std::to_string(2 * i);
    layer.weight_name = layer.module + ".weight";
    layer.bias_name = layer.module + ".bias";
    layers.push_back(std::move(layer));
  }
  return layers;
}

std::unique_ptr<SequentialModel> Make(std::vector<SequentialLayerSpec> layers,
                                      SequentialModelOptions options = {}) {
  absl::StatusOr<std::unique_ptr<SequentialModel>> model =
      SequentialModel::Create(std::move(layers), options);
  if (!model.ok()) throw std::runtime_error(model.status().ToString());
  return std::move(*model);
}

// Every output of the signature, sized for `batch`.
struct Outputs {
  std::vector<std::vector<float>> values;
  std::vector<float*> pointers;
};

Outputs AllOutputs(const Model& model, int64_t batch) {
  Outputs out;
  for (const TensorSpec& spec : model.signature().outputs) {
    int64_t count = 1;
    for (int64_t dim : spec.shape) count *= dim < 0 ? batch : dim;
    out.values.emplace_back(static_cast<size_t>(count), -7.0f);
  }
  for (auto& values : out.values) out.pointers.push_back(values.data());
  return out;
}

struct Case {
  std::vector<int64_t> widths;
  bool last_relu;
  std::vector<size_t> no_bias;
  int64_t batch;
};

class SequentialVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(SequentialVsReference, EveryOutputMatchesTheDoubleReference) {
  const Case& c = GetParam();
  const std::vector<SequentialLayerSpec> specs =
      Stack(c.widths, c.last_relu, c.no_bias);
  const auto model = Make(specs);
  const std::vector<float> x = RandomValues(c.batch * c.widths.front(), 11);
  const std::vector<float> grad_y = RandomValues(c.batch * c.widths.back(), 13);
  Outputs out = AllOutputs(*model, c.batch);
  ModelRun run;
  run.batch = c.batch;
  run.inputs = {x.data(), grad_y.data()};
  run.outputs = out.pointers;
  ASSERT_TRUE(model->Run(run).ok());

  const ReferenceStackResult expected =
      NaiveSequential(specs, c.batch, x.data(), grad_y.data());
  const ModelSignature& signature = model->signature();
  EXPECT_LE(RelativeError(out.values[signature.OutputIndex("y")], expected.y),
            kFp32Tolerance);
  EXPECT_LE(RelativeError(out.values[signature.OutputIndex("grad_x")],
                          expected.grad_x),
            kFp32Tolerance);
  for (size_t i = 0; i < specs.size(); ++i) {
    const int weight = signature.OutputIndex("grad_" + specs[i].weight_name);
    ASSERT_GE(weight, 0);
    EXPECT_LE(RelativeError(out.values[weight], expected.grad_weight[i]),
              kFp32Tolerance)
        << specs[i].weight_name;
    const int bias = signature.OutputIndex("grad_" + specs[i].bias_name);
    if (specs[i].weights.bias.empty()) {
      EXPECT_EQ(bias, -1) << "a layer without a bias has no bias gradient";
    } else {
      ASSERT_GE(bias, 0);
      EXPECT_LE(RelativeError(out.values[bias], expected.grad_bias[i]),
                kFp32Tolerance)
          << specs[i].bias_name;
    }
  }

  // Forward only: the same y, bit for bit.
  Outputs forward = AllOutputs(*model, c.batch);
  ModelRun forward_run;
  forward_run.batch = c.batch;
  forward_run.inputs = {x.data(), nullptr};
  forward_run.outputs = {forward.pointers[0]};
  forward_run.outputs.resize(signature.outputs.size(), nullptr);
  ASSERT_TRUE(model->Run(forward_run).ok());
  EXPECT_EQ(forward.values[0], out.values[0]);
}

INSTANTIATE_TEST_SUITE_P(
    Depths, SequentialVsReference,
    ::testing::Values(Case{{37, 13}, true, {}, 5},
                      Case{{3072, 100}, true, {}, 3},
                      Case{{48, 32, 10}, true, {}, 7},
                      Case{{48, 32, 10}, false, {}, 1},
                      Case{{30, 40, 20, 10}, false, {1}, 9},
                      Case{{64, 48, 32, 24, 16, 8}, true, {0, 4}, 6},
                      Case{{64, 48, 32, 24, 16, 8}, false, {}, 100}),
    [](const auto& info) {
      const Case& c = info.param;
      std::string name = "Depth" + std::to_string(c.widths.size() - 1) + "_N" +
                         std::to_string(c.batch);
      if (!c.last_relu) name += "_Logits";
      if (!c.no_bias.empty()) name += "_NoBias";
      return name + "_K" + std::to_string(c.widths.front());
    });

// The reference's backward pass against central differences of its own
// forward pass (double throughout), so the yardstick is itself checked:
// L = Σ y ⊙ grad_y.
TEST(SequentialReferenceTest, GradientsMatchFiniteDifferences) {
  const std::vector<SequentialLayerSpec> specs = Stack({6, 5, 4, 3}, false);
  const int64_t batch = 2;
  std::vector<float> x = RandomValues(batch * 6, 21);
  const std::vector<float> grad_y = RandomValues(batch * 3, 22);
  const ReferenceStackResult analytic =
      NaiveSequential(specs, batch, x.data(), grad_y.data());
  const auto loss = [&](const std::vector<SequentialLayerSpec>& layers,
                        const std::vector<float>& input) {
    const ReferenceStackResult r =
        NaiveSequential(layers, batch, input.data(), nullptr);
    double sum = 0.0;
    for (size_t i = 0; i < r.y.size(); ++i) sum += r.y[i] * grad_y[i];
    return sum;
  };
  // The loss is piecewise linear: where both one-sided differences agree
  // no kink lies within the step and the difference is the exact slope.
  // Points next to a kink are counted and must stay rare.
  constexpr float kStep = 1e-3f;
  int checked = 0, near_kink = 0;
  const auto check = [&](double analytic_value, double at, double up_loss,
                         double down_loss, float up, float down,
                         const std::string& what) {
    const double right = (up_loss - at) / (static_cast<double>(up) - 0.0);
    const double left = (at - down_loss) / (0.0 - static_cast<double>(down));
    if (std::abs(right - left) > 1e-7) {
      ++near_kink;
      return;
    }
    ++checked;
    EXPECT_NEAR(analytic_value, right, 1e-7) << what;
  };
  const double at = loss(specs, x);
  for (size_t i = 0; i < x.size(); ++i) {
    std::vector<float> up = x, down = x;
    up[i] += kStep;
    down[i] -= kStep;
    check(analytic.grad_x[i], at, loss(specs, up), loss(specs, down),
          up[i] - x[i], down[i] - x[i], "x[" + std::to_string(i) + "]");
  }
  // Every element of one parameter (`param`: weight or bias) of `layer`.
  const auto check_parameter =
      [&](size_t layer, std::vector<float> LinearWeights::*param,
          const std::vector<double>& gradient, const std::string& name) {
        const std::vector<float>& values = specs[layer].weights.*param;
        for (size_t i = 0; i < values.size(); ++i) {
          std::vector<SequentialLayerSpec> up = specs, down = specs;
          float& up_value = (up[layer].weights.*param)[i];
          float& down_value = (down[layer].weights.*param)[i];
          up_value += kStep;
          down_value -= kStep;
          check(gradient[i], at, loss(up, x), loss(down, x),
                up_value - values[i], down_value - values[i],
                "layer " + std::to_string(layer) + " " + name + "[" +
                    std::to_string(i) + "]");
        }
      };
  for (size_t layer = 0; layer < specs.size(); ++layer) {
    check_parameter(layer, &LinearWeights::weight, analytic.grad_weight[layer],
                    "weight");
    check_parameter(layer, &LinearWeights::bias, analytic.grad_bias[layer],
                    "bias");
  }
  EXPECT_GT(checked, 10 * near_kink) << near_kink << " points near a kink";
}

TEST(SequentialModelTest, SignatureNamesEveryParameterGradient) {
  const auto model = Make(Stack({12, 8, 4}, false, {1}));
  const ModelSignature& s = model->signature();
  ASSERT_EQ(s.inputs.size(), 2u);
  EXPECT_EQ(s.inputs[0].name, "x");
  EXPECT_EQ(s.inputs[0].shape, (std::vector<int64_t>{-1, 12}));
  EXPECT_TRUE(s.inputs[0].reshapeable);
  EXPECT_EQ(s.inputs[1].name, "grad_y");
  EXPECT_EQ(s.inputs[1].shape, (std::vector<int64_t>{-1, 4}));
  EXPECT_TRUE(s.inputs[1].optional);
  std::vector<std::string> names;
  for (const TensorSpec& spec : s.outputs) names.push_back(spec.name);
  EXPECT_EQ(names, (std::vector<std::string>{"y", "grad_x", "grad_0.weight",
                                             "grad_0.bias", "grad_2.weight"}));
  EXPECT_EQ(s.outputs[1].shape_of, "x");
  EXPECT_EQ(s.outputs[2].shape, (std::vector<int64_t>{8, 12}));
  EXPECT_EQ(s.outputs[3].shape, (std::vector<int64_t>{8}));
  for (size_t i = 1; i < s.outputs.size(); ++i) {
    EXPECT_EQ(s.outputs[i].needs, "grad_y");
  }
  EXPECT_TRUE(s.outputs[0].needs.empty());
  ASSERT_EQ(model->relu_layers().size(), 1u);
  EXPECT_EQ(model->relu_layers()[0].label, "0");
  EXPECT_EQ(model->relu_layers()[0].units, 8);
  EXPECT_EQ(model->Describe(), "12 -> 8 relu -> 4 (no bias)");
}

TEST(SequentialModelTest, InferenceOnlyModelsListOnlyXAndY) {
  SequentialModelOptions options;
  options.backward = false;
  const auto model = Make(Stack({12, 8, 4}), options);
  ASSERT_EQ(model->signature().inputs.size(), 1u);
  ASSERT_EQ(model->signature().outputs.size(), 1u);
  EXPECT_EQ(model->signature().outputs[0].name, "y");
}

TEST(SequentialModelTest, LayersThatDoNotChainAreRefusedNamingBoth) {
  std::vector<SequentialLayerSpec> layers = Stack({12, 8, 4});
  layers[1].weights = MakeDefaultWeights(9, 4, 1);
  const auto model = SequentialModel::Create(layers);
  ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  {
    const std::string message(model.status().message());
    EXPECT_NE(message.find("0.weight [8, 12]"), std::string::npos) << message;
    EXPECT_NE(message.find("2.weight [4, 9]"), std::string::npos) << message;
  }
  EXPECT_FALSE(SequentialModel::Create({}).ok());
}

// Only what was asked is written; what was not asked leaves the buffers the
// caller did give alone and changes nothing else.
TEST(SequentialModelTest, OneParameterGradientAloneEqualsTheFullRun) {
  const std::vector<SequentialLayerSpec> specs = Stack({20, 16, 12, 8});
  const auto model = Make(specs);
  const int64_t batch = 4;
  const std::vector<float> x = RandomValues(batch * 20, 3);
  const std::vector<float> grad_y = RandomValues(batch * 8, 4);
  Outputs full = AllOutputs(*model, batch);
  ModelRun run{
      batch, Precision::kFloat32, {x.data(), grad_y.data()}, full.pointers};
  ASSERT_TRUE(model->Run(run).ok());

  const int wanted = model->signature().OutputIndex("grad_2.weight");
  Outputs one = AllOutputs(*model, batch);
  ModelRun alone = run;
  alone.outputs.assign(model->signature().outputs.size(), nullptr);
  alone.outputs[wanted] = one.pointers[wanted];
  ASSERT_TRUE(model->Run(alone).ok());
  EXPECT_EQ(one.values[wanted], full.values[wanted]);
}

class RecordingObserver : public ActivationObserver {
 public:
  void Observe(size_t relu, const float* values, int64_t rows) override {
    seen.push_back({relu, values[0], rows});
  }
  struct Seen {
    size_t relu;
    float first;
    int64_t rows;
  };
  std::vector<Seen> seen;
};

TEST(SequentialModelTest, TheObserverSeesEveryReluLayersActivations) {
  const std::vector<SequentialLayerSpec> specs = Stack({10, 6, 5, 3}, false);
  const auto model = Make(specs);
  ASSERT_EQ(model->relu_layers().size(), 2u);
  EXPECT_EQ(model->relu_layers()[1].label, "2");
  const std::vector<float> x = RandomValues(3 * 10, 5);
  Outputs out = AllOutputs(*model, 3);
  RecordingObserver observer;
  ModelRun run{
      3, Precision::kFloat32, {x.data(), nullptr}, out.pointers, &observer};
  ASSERT_TRUE(model->Run(run).ok());
  ASSERT_EQ(observer.seen.size(), 2u);
  EXPECT_EQ(observer.seen[0].relu, 0u);
  EXPECT_EQ(observer.seen[1].relu, 1u);
  EXPECT_EQ(observer.seen[1].rows, 3);
  const ReferenceStackResult expected =
      NaiveSequential({specs[0]}, 3, x.data(), nullptr);
  EXPECT_NEAR(observer.seen[0].first, expected.y[0], 1e-5);
}

std::vector<uint16_t> ToBf16(const std::vector<float>& values) {
  std::vector<uint16_t> rounded(values.size());
  ToBfloat16(values.data(), rounded.data(), values.size());
  return rounded;
}

std::vector<float> Widened(const std::vector<uint16_t>& values) {
  std::vector<float> widened(values.size());
  FromBfloat16(values.data(), widened.data(), values.size());
  return widened;
}

// BF16 through a stack: the first layer on bf16 kernels (bf16 weights), the
// rest in FP32. Against a reference fed the rounded x and first-layer
// weights, y is exact to fp32; the gradients carry the first layer's
// rounded upstream gradient, bfloat16's precision (≈ 2⁻⁸).
TEST(SequentialModelTest, Bfloat16InputsRunThroughTheStack) {
  std::vector<SequentialLayerSpec> specs = Stack({64, 32, 16, 8}, false);
  const auto model = Make(specs);
  const int64_t batch = 5;
  const std::vector<uint16_t> x = ToBf16(RandomValues(batch * 64, 8));
  const std::vector<uint16_t> grad_y = ToBf16(RandomValues(batch * 8, 9));
  Outputs out = AllOutputs(*model, batch);
  ModelRun run{
      batch, Precision::kBFloat16, {x.data(), grad_y.data()}, out.pointers};
  ASSERT_TRUE(model->Run(run).ok());

  specs[0].weights.weight = Widened(ToBf16(specs[0].weights.weight));
  const std::vector<float> x_wide = Widened(x), grad_y_wide = Widened(grad_y);
  const ReferenceStackResult expected =
      NaiveSequential(specs, batch, x_wide.data(), grad_y_wide.data());
  const ModelSignature& s = model->signature();
  EXPECT_LE(RelativeError(out.values[s.OutputIndex("y")], expected.y),
            kFp32Tolerance);
  EXPECT_LE(RelativeError(out.values[s.OutputIndex("grad_4.weight")],
                          expected.grad_weight[2]),
            kFp32Tolerance);
  EXPECT_LE(RelativeError(out.values[s.OutputIndex("grad_x")], expected.grad_x),
            1e-2);
  EXPECT_LE(RelativeError(out.values[s.OutputIndex("grad_0.weight")],
                          expected.grad_weight[0]),
            1e-2);
}

}  // namespace
}  // namespace reluserve
