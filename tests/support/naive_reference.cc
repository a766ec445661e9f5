#include "tests/support/naive_reference.h"

#include <cmath>

namespace reluserve {

double ReferenceRelu(double pre_activation) {
  if (std::isnan(pre_activation)) return pre_activation;
  return pre_activation > 0.0 ? pre_activation : 0.0;
}

ReferenceResult NaiveLinearRelu(const LinearWeights& weights, int64_t batch,
                                const float* x, const float* grad_y) {
  const int64_t k_dim = weights.in_features;
  const int64_t m_dim = weights.out_features;
  ReferenceResult result;
  result.y.assign(batch * m_dim, 0.0);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t m = 0; m < m_dim; ++m) {
      double sum = weights.bias[m];
      for (int64_t k = 0; k < k_dim; ++k) {
        sum += static_cast<double>(x[n * k_dim + k]) *
               static_cast<double>(weights.weight[m * k_dim + k]);
      }
      result.y[n * m_dim + m] = ReferenceRelu(sum);
    }
  }
  if (grad_y == nullptr) return result;

  // g = grad_y where y > 0, else 0: a select, never grad_y · 1[y > 0], so
  // that NaN or ±Inf in grad_y where y <= 0 or y is NaN (NaN > 0 is false)
  // gives 0, not 0·Inf = NaN. The derivative at exactly 0 is 0.
  std::vector<double> relu_grad(batch * m_dim, 0.0);
  for (int64_t i = 0; i < batch * m_dim; ++i) {
    if (result.y[i] > 0.0) relu_grad[i] = grad_y[i];
  }
  result.grad_x.assign(batch * k_dim, 0.0);
  result.grad_weight.assign(m_dim * k_dim, 0.0);
  result.grad_bias.assign(m_dim, 0.0);
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t m = 0; m < m_dim; ++m) {
      const double g = relu_grad[n * m_dim + m];
      result.grad_bias[m] += g;
      for (int64_t k = 0; k < k_dim; ++k) {
        result.grad_x[n * k_dim + k] +=
            g * static_cast<double>(weights.weight[m * k_dim + k]);
        result.grad_weight[m * k_dim + k] +=
            g * static_cast<double>(x[n * k_dim + k]);
      }
    }
  }
  return result;
}

}  // namespace reluserve
