#include "server/core/state_dict.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/core/safetensors.h"
#include "server/core/weights.h"
#include "tests/support/file_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::IsRefused;
using ::reluserve::testing::LittleEndianU64;
using ::reluserve::testing::Safetensors;
using ::reluserve::testing::TempDirTest;

// A header entry: "name":{F32 or dtype, shape, offsets}.
std::string Entry(const std::string& name, const std::string& shape,
                  uint64_t begin, uint64_t end,
                  const std::string& dtype = "F32") {
  return absl::StrCat("\"", name, "\":{\"dtype\":\"", dtype,
                      "\",\"shape\":", shape, ",\"data_offsets\":[", begin, ",",
                      end, "]}");
}

// An nn.Sequential layer: module index, out x in, bias or not.
struct Spec {
  int module;
  int64_t out;
  int64_t in;
  bool bias = true;
};

LinearStack MakeSequential(const std::vector<Spec>& specs) {
  LinearStack stack;
  for (const Spec& s : specs) {
    NamedLinear layer;
    layer.module = absl::StrCat(s.module);
    layer.weight_name = absl::StrCat(s.module, ".weight");
    layer.weights = MakeDefaultWeights(s.in, s.out, 100 + s.module);
    if (s.bias) {
      layer.bias_name = absl::StrCat(s.module, ".bias");
      for (size_t i = 0; i < layer.weights.bias.size(); ++i) {
        layer.weights.bias[i] = static_cast<float>(s.module) + 0.5f * i;
      }
    } else {
      layer.weights.bias.clear();
    }
    stack.layers.push_back(std::move(layer));
  }
  return stack;
}

void ExpectSameLayer(const NamedLinear& a, const NamedLinear& b) {
  EXPECT_EQ(a.module, b.module);
  EXPECT_EQ(a.weight_name, b.weight_name);
  EXPECT_EQ(a.bias_name, b.bias_name);
  EXPECT_EQ(a.weights.in_features, b.weights.in_features);
  EXPECT_EQ(a.weights.out_features, b.weights.out_features);
  EXPECT_EQ(a.weights.weight, b.weights.weight);
  EXPECT_EQ(a.weights.bias, b.weights.bias);
}

class StateDictTest : public TempDirTest {
 protected:
  // A file with header `{entries}` and `data_bytes` zero bytes of data.
  std::string WriteRaw(const std::string& entries, size_t data_bytes) const {
    return WriteFile(Safetensors(absl::StrCat("{", entries, "}"),
                                 std::string(data_bytes, '\0')),
                     "raw.safetensors");
  }

  // Writes `stack` with `prefix`, loads it back with `prefix`, compares.
  void ExpectRoundTrip(const LinearStack& stack,
                       const std::string& prefix = "") {
    const std::string path = PathFor("stack.safetensors");
    ASSERT_TRUE(WriteLinearStack(path, stack, prefix).ok());
    absl::StatusOr<LinearStack> loaded = LoadLinearStack(path, prefix);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_EQ(loaded->layers.size(), stack.layers.size());
    for (size_t i = 0; i < stack.layers.size(); ++i) {
      ExpectSameLayer(loaded->layers[i], stack.layers[i]);
    }
    EXPECT_NE(loaded->source.find(path), std::string::npos);
  }

  // Expects LoadLinearStack(path of `entries`) to be refused with `words`
  // and the file's path.
  ::testing::AssertionResult LoadRefuses(const std::string& entries,
                                         size_t data_bytes,
                                         std::vector<std::string> words,
                                         const std::string& prefix = "") {
    const std::string path = WriteRaw(entries, data_bytes);
    words.push_back(path);
    return IsRefused(LoadLinearStack(path, prefix).status(),
                     absl::StatusCode::kInvalidArgument, words);
  }
};

// --- What loads -------------------------------------------------------------

TEST_F(StateDictTest, SingleLinearWithBias) {
  NamedLinear layer{"", "weight", "bias", MakeDefaultWeights(5, 3, 1)};
  LinearStack stack;
  stack.layers.push_back(layer);
  ExpectRoundTrip(stack);
  ExpectRoundTrip(stack, "fc.");
}

TEST_F(StateDictTest, SingleLinearWithoutBias) {
  NamedLinear layer{"", "weight", "", MakeDefaultWeights(4, 2, 1)};
  layer.weights.bias.clear();
  LinearStack stack;
  stack.layers.push_back(layer);
  ExpectRoundTrip(stack);

  const std::string path = PathFor("stack.safetensors");
  absl::StatusOr<LinearStack> loaded = LoadLinearStack(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->layers[0].bias_name.empty());
  EXPECT_TRUE(loaded->layers[0].weights.bias.empty());
  EXPECT_EQ(loaded->layers[0].module, "");
}

TEST_F(StateDictTest, SequentialOfDepthOne) {
  ExpectRoundTrip(MakeSequential({{0, 3, 4}}));
}

TEST_F(StateDictTest, SequentialOfDepthTwoThreeAndFiveWithModuleGaps) {
  ExpectRoundTrip(MakeSequential({{0, 6, 4}, {2, 3, 6}}));
  ExpectRoundTrip(MakeSequential({{0, 6, 4}, {2, 5, 6}, {4, 2, 5}}));
  ExpectRoundTrip(
      MakeSequential({{0, 8, 3}, {2, 7, 8}, {4, 6, 7}, {6, 5, 6}, {8, 1, 5}}));
  // Adjacent modules (Linear, Linear) load too.
  ExpectRoundTrip(MakeSequential({{0, 6, 4}, {1, 3, 6}}));
}

TEST_F(StateDictTest, ModulesLoadInNumericNotStringOrder) {
  // 12 layers, modules 0..11: the names sort as 0, 1, 10, 11, 2, ...
  std::vector<Spec> specs;
  for (int i = 0; i < 12; ++i) specs.push_back({i, i + 2, i + 1});
  const LinearStack stack = MakeSequential(specs);
  ExpectRoundTrip(stack);
  absl::StatusOr<LinearStack> loaded =
      LoadLinearStack(PathFor("stack.safetensors"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(loaded->layers[i].module, absl::StrCat(i));
    EXPECT_EQ(loaded->layers[i].weights.in_features, i + 1);
  }
  EXPECT_EQ(loaded->layers[10].weight_name, "10.weight");
}

TEST_F(StateDictTest, BiasFalseLayersInASequential) {
  ExpectRoundTrip(MakeSequential(
      {{0, 6, 4, /*bias=*/false}, {2, 5, 6}, {4, 2, 5, /*bias=*/false}}));
}

TEST_F(StateDictTest, PrefixSelectsTheSubModuleAndIgnoresTheRest) {
  const LinearStack net = MakeSequential({{0, 6, 4}, {2, 3, 6}});
  // The same file also holds a head and a look-alike "net2." module, some in
  // a dtype the loader could not use.
  std::vector<SafetensorsF32Entry> tensors;
  for (const NamedLinear& l : net.layers) {
    const auto m = static_cast<uint64_t>(l.weights.out_features);
    const auto k = static_cast<uint64_t>(l.weights.in_features);
    tensors.push_back({"net." + l.weight_name, {m, k}, l.weights.weight});
    tensors.push_back({"net." + l.bias_name, {m}, l.weights.bias});
  }
  const std::vector<float> other(12, 1.0f);
  tensors.push_back({"net2.0.weight", {3, 4}, other});
  tensors.push_back({"head.running_mean", {12}, other});
  const std::string path = PathFor("model.safetensors");
  ASSERT_TRUE(WriteSafetensorsF32(path, tensors).ok());

  absl::StatusOr<LinearStack> loaded = LoadLinearStack(path, "net.");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->layers.size(), 2u);
  ExpectSameLayer(loaded->layers[0], net.layers[0]);
  ExpectSameLayer(loaded->layers[1], net.layers[1]);
  EXPECT_NE(loaded->source.find("net."), std::string::npos);
  EXPECT_NE(loaded->layers[1].weights.source.find("module 2"),
            std::string::npos)
      << loaded->layers[1].weights.source;

  // Without the prefix, the other modules are in the way.
  EXPECT_TRUE(IsRefused(LoadLinearStack(path).status(),
                        absl::StatusCode::kInvalidArgument,
                        {path, "not a Linear parameter", "prefix"}));
  // A prefix without its dot is pointed out.
  EXPECT_TRUE(IsRefused(LoadLinearStack(path, "net").status(),
                        absl::StatusCode::kInvalidArgument, {path, "'net.'"}));
  EXPECT_TRUE(IsRefused(LoadLinearStack(path, "encoder.").status(),
                        absl::StatusCode::kInvalidArgument,
                        {path, "no tensor under prefix 'encoder.'", "head."}));
}

TEST_F(StateDictTest, LoadsTensorsWhateverTheirDataOrder) {
  // 0.bias before 0.weight in the data, header in neither order.
  const std::string entries = absl::StrCat(Entry("0.bias", "[2]", 0, 8), ",",
                                           Entry("0.weight", "[2,1]", 8, 16));
  const std::string path = WriteRaw(entries, 16);
  absl::StatusOr<LinearStack> loaded = LoadLinearStack(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->layers[0].weights.in_features, 1);
  EXPECT_EQ(loaded->layers[0].weights.out_features, 2);
}

// --- What is refused --------------------------------------------------------

TEST_F(StateDictTest, RefusesLayersThatDoNotChainNamingBoth) {
  const LinearStack stack =
      MakeSequential({{0, 8, 4}, {2, 3, 5}});  // 8 out, then 5 in.
  const std::string path = PathFor("stack.safetensors");
  ASSERT_TRUE(WriteLinearStack(path, stack, "net.").ok());
  EXPECT_TRUE(IsRefused(LoadLinearStack(path, "net.").status(),
                        absl::StatusCode::kInvalidArgument,
                        {path, "do not chain", "'net.0.weight'", "[8,4]",
                         "'net.2.weight'", "[3,5]"}));
}

TEST_F(StateDictTest, RefusesOtherDtypes) {
  EXPECT_TRUE(LoadRefuses(Entry("weight", "[2,3]", 0, 12, "F16"), 12,
                          {"'weight'", "dtype F16", "F32"}));
  EXPECT_TRUE(LoadRefuses(absl::StrCat(Entry("0.weight", "[1,2]", 0, 8), ",",
                                       Entry("0.bias", "[1]", 8, 16, "F64")),
                          16, {"'0.bias'", "dtype F64"}));
}

TEST_F(StateDictTest, RefusesZeroSizeTensors) {
  EXPECT_TRUE(LoadRefuses(absl::StrCat(Entry("0.weight", "[0,3]", 0, 0)), 0,
                          {"'0.weight'", "zero dimension"}));
  EXPECT_TRUE(LoadRefuses(absl::StrCat(Entry("weight", "[2,3]", 0, 24), ",",
                                       Entry("bias", "[0]", 24, 24)),
                          24, {"'bias'", "zero dimension"}));
}

TEST_F(StateDictTest, RefusesOverlappingLayers) {
  // 2.weight reuses the bytes of 0.weight.
  const std::string entries =
      absl::StrCat(Entry("0.weight", "[2,2]", 0, 16), ",",
                   Entry("2.weight", "[1,2]", 8, 16));
  EXPECT_TRUE(
      LoadRefuses(entries, 16, {"'0.weight'", "'2.weight'", "overlap"}));
}

TEST_F(StateDictTest, RefusesOffsetsOutsideTheFile) {
  EXPECT_TRUE(LoadRefuses(absl::StrCat(Entry("0.weight", "[2,2]", 0, 16), ",",
                                       Entry("0.bias", "[2]", 16, 24)),
                          20, {"'0.bias'", "beyond the data section"}));
}

TEST_F(StateDictTest, RefusesBrokenFiles) {
  const std::string huge =
      WriteFile(LittleEndianU64(uint64_t{1} << 62) + "{}", "huge.safetensors");
  EXPECT_TRUE(IsRefused(LoadLinearStack(huge).status(),
                        absl::StatusCode::kInvalidArgument, {huge, "absurd"}));
  const std::string not_json =
      WriteFile(Safetensors("{\"0.weight\": [", ""), "not_json.safetensors");
  EXPECT_TRUE(IsRefused(LoadLinearStack(not_json).status(),
                        absl::StatusCode::kInvalidArgument,
                        {not_json, "not valid JSON"}));
  const std::string truncated = WriteFile("abc", "truncated.safetensors");
  EXPECT_TRUE(IsRefused(LoadLinearStack(truncated).status(),
                        absl::StatusCode::kInvalidArgument,
                        {truncated, "too short"}));
  const std::string missing = PathFor("missing.safetensors");
  EXPECT_TRUE(IsRefused(LoadLinearStack(missing).status(),
                        absl::StatusCode::kNotFound, {missing}));
}

TEST_F(StateDictTest, RefusesTensorsThatAreNotLinearParameters) {
  const std::string linear = Entry("0.weight", "[2,2]", 0, 16);
  EXPECT_TRUE(LoadRefuses(
      absl::StrCat(linear, ",", Entry("0.running_mean", "[2]", 16, 24)), 24,
      {"'0.running_mean'", "not a Linear parameter"}));
  // A norm's weight has rank 1.
  EXPECT_TRUE(
      LoadRefuses(absl::StrCat(linear, ",", Entry("1.weight", "[2]", 16, 24)),
                  24, {"'1.weight'", "rank 1, expected rank 2"}));
  EXPECT_TRUE(
      LoadRefuses(absl::StrCat(linear, ",", Entry("3.bias", "[2]", 16, 24)), 24,
                  {"'3.bias' has no '3.weight'"}));
  // A nested Sequential, a leading zero, a non-numeric module.
  EXPECT_TRUE(LoadRefuses(Entry("0.0.weight", "[2,2]", 0, 16), 16,
                          {"'0.0.weight'", "not a Linear parameter"}));
  EXPECT_TRUE(LoadRefuses(Entry("01.weight", "[2,2]", 0, 16), 16,
                          {"'01.weight'", "not a Linear parameter"}));
  EXPECT_TRUE(LoadRefuses(Entry("fc.weight", "[2,2]", 0, 16), 16,
                          {"'fc.weight'", "a prefix such as"}));
  // Both forms at once.
  EXPECT_TRUE(
      LoadRefuses(absl::StrCat(linear, ",", Entry("weight", "[2,2]", 16, 32)),
                  32, {"'weight'", "'0.weight'", "single nn.Linear"}));
  // A bias of the wrong length or rank.
  EXPECT_TRUE(
      LoadRefuses(absl::StrCat(linear, ",", Entry("0.bias", "[3]", 16, 28)), 28,
                  {"'0.bias' has length 3", "2 rows"}));
  EXPECT_TRUE(
      LoadRefuses(absl::StrCat(linear, ",", Entry("0.bias", "[2,1]", 16, 24)),
                  24, {"'0.bias'", "expected rank 1"}));
}

TEST_F(StateDictTest, RefusesAFileWithoutTensors) {
  EXPECT_TRUE(LoadRefuses("", 0, {"no Linear parameters", "no tensors"}));
}

TEST_F(StateDictTest, WriteRefusesInconsistentLayers) {
  const std::string path = PathFor("bad.safetensors");
  LinearStack stack = MakeSequential({{0, 3, 2}});
  stack.layers[0].weights.bias.clear();  // bias_name still "0.bias".
  EXPECT_TRUE(IsRefused(WriteLinearStack(path, stack),
                        absl::StatusCode::kInvalidArgument,
                        {path, "inconsistent layer 0"}));
  stack = MakeSequential({{0, 3, 2}});
  stack.layers[0].weights.weight.pop_back();
  EXPECT_TRUE(IsRefused(WriteLinearStack(path, stack),
                        absl::StatusCode::kInvalidArgument,
                        {path, "weight.size()=5"}));
}

// --- ParseLayerPlan ---------------------------------------------------------

TEST(ParseLayerPlanTest, DefaultIsAReluAfterEveryLinear) {
  const LinearStack stack = MakeSequential({{0, 4, 4}, {2, 4, 4}, {4, 4, 4}});
  absl::StatusOr<std::vector<bool>> plan = ParseLayerPlan("", stack);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(*plan, (std::vector<bool>{true, true, true}));
}

TEST(ParseLayerPlanTest, SequentialModuleLists) {
  const LinearStack gaps = MakeSequential({{0, 4, 4}, {2, 4, 4}, {4, 4, 4}});
  absl::StatusOr<std::vector<bool>> plan =
      ParseLayerPlan("linear,relu,linear,relu,linear", gaps);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(*plan, (std::vector<bool>{true, true, false}));
  plan = ParseLayerPlan(" linear , relu,linear ,relu , linear,relu ", gaps);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(*plan, (std::vector<bool>{true, true, true}));

  const LinearStack adjacent = MakeSequential({{0, 4, 4}, {1, 4, 4}});
  plan = ParseLayerPlan("linear,linear,relu", adjacent);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(*plan, (std::vector<bool>{false, true}));
}

// nn.Sequential(Flatten, Linear, ReLU, Dropout, Linear): modules 1 and 4
// are the Linears; Flatten and Dropout are the identity in model.eval().
TEST(ParseLayerPlanTest, IdentityModulesAreSkippedButKeepTheirPositions) {
  const LinearStack stack = MakeSequential({{1, 4, 4}, {4, 4, 2}});
  absl::StatusOr<std::vector<bool>> plan =
      ParseLayerPlan("flatten,linear,relu,dropout,linear", stack);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(*plan, (std::vector<bool>{true, false}));
  plan = ParseLayerPlan("identity,linear,dropout,relu,linear", stack);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(*plan, (std::vector<bool>{true, false}));
  // Without the Flatten the Linears would be modules 0 and 3.
  EXPECT_FALSE(ParseLayerPlan("linear,relu,dropout,linear", stack).ok());
  const absl::Status other =
      ParseLayerPlan("flatten,linear,tanh,dropout,linear", stack).status();
  EXPECT_NE(other.message().find("'tanh'"), absl::string_view::npos) << other;
  EXPECT_NE(other.message().find("'dropout'"), absl::string_view::npos)
      << other;
}

TEST(ParseLayerPlanTest, SingleLinear) {
  LinearStack stack;
  stack.layers.push_back({"", "weight", "bias", MakeDefaultWeights(2, 2, 1)});
  EXPECT_EQ(*ParseLayerPlan("linear", stack), (std::vector<bool>{false}));
  EXPECT_EQ(*ParseLayerPlan("linear,relu", stack), (std::vector<bool>{true}));
  EXPECT_EQ(*ParseLayerPlan("", stack), (std::vector<bool>{true}));
}

TEST(ParseLayerPlanTest, RefusalsSayWhatWasExpectedAndWhatCame) {
  const LinearStack stack = MakeSequential({{0, 4, 4}, {2, 4, 4}, {4, 4, 4}});
  const auto refused = [&stack](const std::string& layers,
                                const std::vector<std::string>& words) {
    std::vector<std::string> all = words;
    all.push_back(absl::StrCat("layers '", layers, "'"));
    return IsRefused(ParseLayerPlan(layers, stack).status(),
                     absl::StatusCode::kInvalidArgument, all);
  };
  EXPECT_TRUE(refused("relu,linear,relu,linear,relu,linear",
                      {"position 0", "'relu', expected 'linear'"}));
  EXPECT_TRUE(refused("linear,relu,relu,linear",
                      {"position 2", "second 'relu'", "expected 'linear'"}));
  EXPECT_TRUE(refused("linear,Relu,linear,relu,linear",
                      {"position 1", "'Relu'", "expected 'linear', 'relu'"}));
  EXPECT_TRUE(refused("linear,relu,linear,relu,linear,",
                      {"position 5", "''", "expected 'linear', 'relu'"}));
  EXPECT_TRUE(refused("linear,relu,dropout,linear",
                      {"2 'linear' entries", "expected 3"}));
  EXPECT_TRUE(
      refused("linear,relu,linear", {"2 'linear' entries, expected 3"}));
  EXPECT_TRUE(refused("linear,relu,linear,relu,linear,relu,linear",
                      {"4 'linear' entries, expected 3"}));
  // Three Linears, but not at modules 0, 2, 4.
  EXPECT_TRUE(refused("linear,linear,relu,linear",
                      {"positions 0, 1, 3", "modules, 0, 2, 4",
                       "e.g. 'linear,relu,linear,relu,linear'"}));
}

TEST(ParseLayerPlanTest, ModulesNoListCanDescribe) {
  // Linear, ReLU, Dropout, Linear: modules 0 and 3.
  const LinearStack stack = MakeSequential({{0, 4, 4}, {3, 4, 4}});
  EXPECT_TRUE(ParseLayerPlan("", stack).ok());
  EXPECT_TRUE(IsRefused(ParseLayerPlan("linear,relu,linear", stack).status(),
                        absl::StatusCode::kInvalidArgument,
                        {"positions 0, 2", "0, 3", "no list describes"}));
}

}  // namespace
}  // namespace reluserve
