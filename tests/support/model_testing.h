#ifndef RELUSERVE_TESTS_SUPPORT_MODEL_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_MODEL_TESTING_H_

#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include "server/core/sequential_model.h"
#include "server/core/weights.h"

namespace reluserve::testing {

// One nn.Linear followed by a ReLU, as the server serves a `weight`/`bias`
// file: tensors x, grad_y; y, grad_x, grad_weight, grad_bias. Throws on
// failure (gtest reports it as the test's failure).
inline std::shared_ptr<const SequentialModel> SingleLayerModel(
    const LinearWeights& weights, SequentialModelOptions options = {}) {
  SequentialLayerSpec layer;
  layer.weights = weights;
  absl::StatusOr<std::unique_ptr<SequentialModel>> model =
      SequentialModel::Create({layer}, options);
  if (!model.ok()) throw std::runtime_error(model.status().ToString());
  return std::move(*model);
}

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_MODEL_TESTING_H_
