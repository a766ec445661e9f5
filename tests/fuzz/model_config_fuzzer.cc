// config.pbtxt as the model repository reads it: ApplyModelConfig (protobuf
// text format into Triton's ModelConfig, then every field ReluServe cannot
// honour refused), and for a config that is accepted its `layers`
// parameter placed on an nn.Sequential of two Linears and on a single
// nn.Linear, as the model loading does. Beyond "no crash" it checks that a
// refusal is InvalidArgument naming the file, and what an accepted config
// may hold.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "server/core/state_dict.h"
#include "server/service/model_repository.h"
#include "tests/support/fuzz_testing.h"

namespace reluserve {
namespace {

using testing::FuzzCheckFailed;

constexpr char kConfigPath[] = "models/mlp/config.pbtxt";

LinearStack Stack(std::vector<std::string> modules) {
  LinearStack stack;
  for (std::string& module : modules) {
    NamedLinear layer;
    layer.module = std::move(module);
    stack.layers.push_back(std::move(layer));
  }
  return stack;
}

void PlaceLayers(const std::string& layers, const LinearStack& stack) {
  absl::StatusOr<std::vector<bool>> relus = ParseLayerPlan(layers, stack);
  if (relus.ok()
          ? relus->size() != stack.layers.size()
          : relus.status().code() != absl::StatusCode::kInvalidArgument) {
    FuzzCheckFailed("a layer plan that neither fits nor is refused as invalid");
  }
}

}  // namespace
}  // namespace reluserve

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reluserve;
  using namespace reluserve::testing;
  static const LinearStack* const sequential =
      new LinearStack(Stack({"0", "2"}));
  static const LinearStack* const single = new LinearStack(Stack({""}));
  RepositoryModel model;
  model.name = "mlp";
  model.config_path = kConfigPath;
  model.versions.push_back({1, "models/mlp/1/model.safetensors"});
  const std::string text(reinterpret_cast<const char*>(data), size);
  const absl::Status applied = ApplyModelConfig(kConfigPath, text, &model);
  FuzzLog("outcome", applied);
  if (!applied.ok()) {
    FuzzExpectRefusal(applied, absl::StatusCode::kInvalidArgument);
    if (!absl::StrContains(applied.message(), kConfigPath)) {
      FuzzCheckFailed("a refusal that does not name the file");
    }
    return 0;
  }
  if (model.max_batch_size < 0 || model.max_queue_delay_us < 0) {
    FuzzCheckFailed("an accepted config with a negative batch size or delay");
  }
  for (int64_t preferred : model.preferred_batch_sizes) {
    if (preferred <= 0 ||
        (model.max_batch_size > 0 && preferred > model.max_batch_size)) {
      FuzzCheckFailed("an accepted preferred_batch_size out of range");
    }
  }
  PlaceLayers(model.layers, *sequential);
  PlaceLayers(model.layers, *single);
  return 0;
}
