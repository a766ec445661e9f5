#ifndef RELUSERVE_SERVER_CORE_LINEAR_LAYER_H_
#define RELUSERVE_SERVER_CORE_LINEAR_LAYER_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dnnl.hpp"
#include "server/core/batch_cache.h"
#include "server/core/precision.h"
#include "server/core/weights.h"

namespace reluserve {

struct LinearLayerOptions {
  // A ReLU after the Linear (the seed's block); false: y = x·Wᵀ + b.
  bool relu = true;
  // OpenMP threads oneDNN may use inside one call. Concurrent callers each
  // open their own team, so more than 1 oversubscribes a small machine.
  int intra_op_threads = 1;
  // How many batch sizes keep their primitives; the least recently used
  // batch size is dropped beyond this.
  size_t max_cached_batch_sizes = 64;
};

// Where the backward pass writes; a null pointer skips that gradient.
struct GradientOutputs {
  float* grad_x = nullptr;       // [N, K]
  float* grad_weight = nullptr;  // [M, K], summed over the batch
  float* grad_bias = nullptr;    // [M], summed over the batch
};

// One layer y = max(0, x·Wᵀ + b) (or without the max when `relu` is off)
// and its backward pass, on oneDNN. A layer without a bias (empty
// LinearWeights::bias) adds zeros and its grad_bias is never asked for.
//
// Thread safety: after Create(), every method may be called from any number
// of threads at once. Primitives are shared between callers; each call brings
// its own scratchpad (oneDNN's default scratchpad is not safe to share).
class LinearLayer {
 public:
  static absl::StatusOr<std::unique_ptr<LinearLayer>> Create(
      const LinearWeights& weights, const LinearLayerOptions& options = {});

  LinearLayer(const LinearLayer&) = delete;
  LinearLayer& operator=(const LinearLayer&) = delete;
  ~LinearLayer();

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  bool relu() const { return options_.relu; }
  bool has_bias() const { return has_bias_; }

  // x: [batch, K] row-major, in `input` precision; y: [batch, M] row-major
  // FP32. With bfloat16 inputs oneDNN's bf16 kernels run (bf16 weights,
  // FP32 accumulation and outputs).
  absl::Status Forward(int64_t batch, const void* x, Precision input,
                       float* y) const;

  // The backward pass for upstream gradient grad_y [batch, M], in the same
  // precision as x. `y` is this layer's output for x (from Forward); with a
  // ReLU it masks the gradient, without one it is not read and may be null.
  // Gradients are FP32.
  absl::Status Backward(int64_t batch, const void* x, Precision input,
                        const float* y, const void* grad_y,
                        const GradientOutputs& gradients) const;

  // Forward then Backward; `y` may be null when the caller does not want it.
  absl::Status ForwardBackward(int64_t batch, const void* x, const void* grad_y,
                               Precision input, float* y,
                               const GradientOutputs& gradients) const;

  // FP32 shorthands.
  absl::Status Forward(int64_t batch, const float* x, float* y) const {
    return Forward(batch, x, Precision::kFloat32, y);
  }
  absl::Status ForwardBackward(int64_t batch, const float* x,
                               const float* grad_y, float* y,
                               const GradientOutputs& gradients) const {
    return ForwardBackward(batch, x, grad_y, Precision::kFloat32, y, gradients);
  }

  // The instruction set oneDNN dispatches to on this machine, e.g.
  // "avx512_core_bf16".
  static std::string CpuIsaName();

 private:
  struct ForwardPrimitives;
  struct BackwardPrimitives;

  LinearLayer(const LinearWeights& weights, const LinearLayerOptions& options);

  absl::Status CheckBatch(int64_t batch) const;
  std::shared_ptr<const ForwardPrimitives> BuildForward(int64_t batch,
                                                        Precision input) const;
  std::shared_ptr<const BackwardPrimitives> BuildBackward(
      int64_t batch, Precision input) const;
  // The weights reordered into `layout`, made on first request.
  dnnl::memory WeightsIn(const dnnl::memory::desc& layout) const;
  void RunForward(int64_t batch, const void* x, Precision input,
                  float* y) const;
  void RunBackward(int64_t batch, const void* x, Precision input,
                   const float* y, const void* grad_y,
                   const GradientOutputs& gradients) const;

  const int64_t in_features_;
  const int64_t out_features_;
  const bool has_bias_;
  const LinearLayerOptions options_;
  // Plain [M, K] weights: the source of every reordered copy.
  std::vector<float> plain_weight_;
  std::vector<float> bias_;  // zeros without a bias

  mutable std::mutex weights_mutex_;
  // Guarded by weights_mutex_: one copy per layout a primitive asked for
  // (usually two: forward and backward-data).
  mutable std::vector<std::pair<dnnl::memory::desc, dnnl::memory>>
      reordered_weights_;
  // Keyed by CacheKey(batch, precision).
  mutable BatchCache<ForwardPrimitives> forward_cache_;
  mutable BatchCache<BackwardPrimitives> backward_cache_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_CORE_LINEAR_LAYER_H_
