#include "tests/support/naive_reference.h"

#include <cmath>
#include <utility>

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
      double sum = weights.bias.empty() ? 0.0 : weights.bias[m];
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

ReferenceStackResult NaiveSequential(
    const std::vector<SequentialLayerSpec>& layers, int64_t batch,
    const float* x, const float* grad_y) {
  // inputs[i]: what layer i reads, [batch, K_i]; inputs[depth]: y.
  std::vector<std::vector<double>> inputs(layers.size() + 1);
  inputs[0].assign(x, x + batch * layers.front().weights.in_features);
  for (size_t i = 0; i < layers.size(); ++i) {
    const LinearWeights& w = layers[i].weights;
    std::vector<double>& out = inputs[i + 1];
    out.assign(batch * w.out_features, 0.0);
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t m = 0; m < w.out_features; ++m) {
        double sum = w.bias.empty() ? 0.0 : w.bias[m];
        for (int64_t k = 0; k < w.in_features; ++k) {
          sum += inputs[i][n * w.in_features + k] *
                 static_cast<double>(w.weight[m * w.in_features + k]);
        }
        out[n * w.out_features + m] = layers[i].relu ? ReferenceRelu(sum) : sum;
      }
    }
  }
  ReferenceStackResult result;
  result.y = inputs.back();
  if (grad_y == nullptr) return result;
  result.grad_weight.resize(layers.size());
  result.grad_bias.resize(layers.size());
  std::vector<double> upstream(grad_y, grad_y + result.y.size());
  for (size_t i = layers.size(); i-- > 0;) {
    const LinearWeights& w = layers[i].weights;
    std::vector<double> g = upstream;
    if (layers[i].relu) {
      for (size_t j = 0; j < g.size(); ++j) {
        if (!(inputs[i + 1][j] > 0.0)) g[j] = 0.0;
      }
    }
    std::vector<double> grad_in(batch * w.in_features, 0.0);
    result.grad_weight[i].assign(w.out_features * w.in_features, 0.0);
    if (!w.bias.empty()) result.grad_bias[i].assign(w.out_features, 0.0);
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t m = 0; m < w.out_features; ++m) {
        const double gm = g[n * w.out_features + m];
        if (!w.bias.empty()) result.grad_bias[i][m] += gm;
        for (int64_t k = 0; k < w.in_features; ++k) {
          grad_in[n * w.in_features + k] +=
              gm * static_cast<double>(w.weight[m * w.in_features + k]);
          result.grad_weight[i][m * w.in_features + k] +=
              gm * inputs[i][n * w.in_features + k];
        }
      }
    }
    upstream = std::move(grad_in);
  }
  result.grad_x = std::move(upstream);
  return result;
}

}  // namespace reluserve
