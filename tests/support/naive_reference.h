#ifndef RELUSERVE_TESTS_SUPPORT_NAIVE_REFERENCE_H_
#define RELUSERVE_TESTS_SUPPORT_NAIVE_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "server/core/sequential_model.h"
#include "server/core/weights.h"

namespace reluserve {

// Linear+ReLU forward and backward as plain loops in double precision: the
// yardstick the oneDNN implementation is tested against. Tests only.
struct ReferenceResult {
  std::vector<double> y;            // [N, M]
  std::vector<double> grad_x;       // [N, K]; empty without grad_y
  std::vector<double> grad_weight;  // [M, K]; empty without grad_y
  std::vector<double> grad_bias;    // [M]; empty without grad_y
};

// ReLU as PyTorch computes it: NaN propagates, everything else is max(0, v).
double ReferenceRelu(double pre_activation);

// `grad_y` may be null for a forward-only result. The backward pass masks
// with the contract's select, g = grad_y where y > 0, else 0; the products
// after it (g·W, gᵀ·x) follow IEEE arithmetic.
ReferenceResult NaiveLinearRelu(const LinearWeights& weights, int64_t batch,
                                const float* x, const float* grad_y);

// A stack's forward and backward pass, all in double (activations between
// layers too): y, grad_x and per layer grad_weight/grad_bias (empty for a
// layer without a bias). `grad_y` may be null.
struct ReferenceStackResult {
  std::vector<double> y;
  std::vector<double> grad_x;
  std::vector<std::vector<double>> grad_weight, grad_bias;
};

ReferenceStackResult NaiveSequential(
    const std::vector<SequentialLayerSpec>& layers, int64_t batch,
    const float* x, const float* grad_y);

}  // namespace reluserve

#endif  // RELUSERVE_TESTS_SUPPORT_NAIVE_REFERENCE_H_
