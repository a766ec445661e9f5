#ifndef RELUSERVE_TESTS_SUPPORT_FUZZ_MODELS_H_
#define RELUSERVE_TESTS_SUPPORT_FUZZ_MODELS_H_

// The models the request fuzzers (tests/fuzz) serve: small enough that a
// request which validates is computed at once, varied enough that every
// branch of the signature is there. Names and sizes are what the seed
// corpora (tests/fuzz/make_corpus.py) use.

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/core/sequential_model.h"
#include "server/core/weights.h"
#include "server/service/inference_runtime.h"
#include "spdlog/spdlog.h"
#include "tests/support/fuzz_testing.h"

namespace reluserve::testing {

inline constexpr int64_t kFuzzMaxBatch = 8;

inline SequentialLayerSpec FuzzLayer(int64_t in, int64_t out, bool relu,
                                     std::string module, bool bias = true) {
  SequentialLayerSpec layer;
  layer.weights = MakeDefaultWeights(in, out, /*seed=*/7 + in * 10 + out);
  if (!bias) layer.weights.bias.clear();
  layer.relu = relu;
  if (!module.empty()) {
    layer.weight_name = module + ".weight";
    layer.bias_name = module + ".bias";
  }
  layer.module = std::move(module);
  return layer;
}

inline std::shared_ptr<const Model> FuzzModel(
    std::vector<SequentialLayerSpec> layers, bool backward) {
  SequentialModelOptions options;
  options.backward = backward;
  absl::StatusOr<std::unique_ptr<SequentialModel>> model =
      SequentialModel::Create(std::move(layers), options);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    FuzzCheckFailed("a fuzz model could not be built");
  }
  return std::shared_ptr<const Model>(std::move(*model));
}

inline ServedModelSpec FuzzSpec(const std::string& name,
                                const std::string& version,
                                std::shared_ptr<const Model> model) {
  ServedModelSpec spec;
  spec.config.name = name;
  spec.config.version = version;
  spec.config.max_batch = kFuzzMaxBatch;
  spec.model = std::move(model);
  spec.scheduling.max_batch_rows = kFuzzMaxBatch;
  return spec;
}

// `linear_relu` v1: Linear(6, 4) + ReLU; `deep` v1 and v3: Linear(6, 5),
// ReLU, Linear(5, 4), ReLU, Linear(4, 3) without bias (modules 0, 2, 4);
// `forward_only` v1: Linear(6, 4) + ReLU, no backward. Every one at most
// kFuzzMaxBatch rows, computed inline on the caller's thread.
inline std::vector<ServedModelSpec> FuzzModels() {
  std::vector<SequentialLayerSpec> deep;
  deep.push_back(FuzzLayer(6, 5, true, "0"));
  deep.push_back(FuzzLayer(5, 4, true, "2"));
  deep.push_back(FuzzLayer(4, 3, false, "4", /*bias=*/false));
  const std::shared_ptr<const Model> deep_model =
      FuzzModel(std::move(deep), /*backward=*/true);
  std::vector<ServedModelSpec> specs;
  specs.push_back(FuzzSpec("linear_relu", "1",
                           FuzzModel({FuzzLayer(6, 4, true, "")}, true)));
  specs.push_back(FuzzSpec("deep", "1", deep_model));
  specs.push_back(FuzzSpec("deep", "3", deep_model));
  specs.push_back(FuzzSpec("forward_only", "1",
                           FuzzModel({FuzzLayer(6, 4, true, "")}, false)));
  return specs;
}

// The runtime both request fuzzers start their requests on: the models
// above with the server's default limits, the dead-ReLU monitor on with a
// short window (so that its window turns over), no log output.
inline InferenceRuntime& FuzzRuntime() {
  static InferenceRuntime* const runtime = [] {
    spdlog::set_level(spdlog::level::off);
    InferenceMonitoring monitoring;
    monitoring.dead_relu.window_rows = 16;
    return new InferenceRuntime(FuzzModels(), InferenceLimits(), monitoring);
  }();
  return *runtime;
}

// Starts `request` on the runtime with `reply` as a front end does, and
// checks the outcome: answered before Start returns (the models compute
// inline), a refusal INVALID_ARGUMENT or NOT_FOUND, `on_success` for an
// answer, and nothing held once the reply is sent.
inline void FuzzStart(InferenceRuntime& runtime, RuntimeRequest request,
                      InferenceReply& reply,
                      const std::function<void()>& on_success) {
  bool answered = false;
  absl::Status outcome;
  InferenceRuntime::Sent sent;
  runtime.Start(std::move(request), reply,
                [&](const absl::Status& status, InferenceRuntime::Sent done) {
                  answered = true;
                  outcome = status;
                  sent = std::move(done);
                });
  if (!answered) FuzzCheckFailed("no answer before Start returned");
  FuzzLog("outcome", outcome);
  if (outcome.ok()) {
    on_success();
  } else {
    FuzzExpectRefusal(outcome, absl::StatusCode::kInvalidArgument,
                      absl::StatusCode::kNotFound);
  }
  if (sent) sent();
  if (runtime.pending_bytes() != 0 || runtime.requests_in_flight() != 0) {
    FuzzCheckFailed("the request still holds bytes or counts in flight");
  }
}

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_FUZZ_MODELS_H_
