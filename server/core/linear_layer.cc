#include "server/core/linear_layer.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/onednn_execution.h"

namespace reluserve {
namespace {

using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;
using onednn::Binding;
using onednn::Grown;

// Per-thread buffers reused across calls: the backward pass's intermediates.
// Allocating them per call would fault fresh pages in on every request.
struct ThreadWorkspace {
  std::vector<float> y;
  std::vector<float> relu_grad;
  std::vector<uint16_t> relu_grad_bf16;
  std::vector<float> grad_weight;
  std::vector<float> grad_bias;
};

ThreadWorkspace& LocalWorkspace() {
  thread_local ThreadWorkspace workspace;
  return workspace;
}

// Cache key: each batch size once per input precision.
int64_t CacheKey(int64_t batch, Precision input) {
  return batch * 2 + (input == Precision::kBFloat16 ? 1 : 0);
}

// max(0, v) that lets NaN through, as PyTorch does: one pass over the [N, M]
// output, which is K times smaller than the inner product that made it.
void ApplyRelu(float* values, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    const float v = values[i];
    values[i] = (v > 0.0f || v != v) ? v : 0.0f;
  }
}

// Activations and gradients are the caller's plain row-major buffers (no
// copies); only the weights may take a blocked layout of oneDNN's choice.
// `x` and `diff_y` (grad_y, and the masked gradient) are in the input
// precision; y, grad_x, grad_weight and grad_bias are always FP32.
struct PlainDescs {
  memory::desc x, diff_y, y, grad_x, bias, any_weights;
};

PlainDescs DescsFor(int64_t batch, int64_t in_features, int64_t out_features,
                    Precision input) {
  const memory::dim n = batch, k = in_features, m = out_features;
  const DataType wire = onednn::DataTypeOf(input);
  return {memory::desc({n, k}, wire, Tag::nc),
          memory::desc({n, m}, wire, Tag::nc),
          memory::desc({n, m}, DataType::f32, Tag::nc),
          memory::desc({n, k}, DataType::f32, Tag::nc),
          memory::desc({m}, DataType::f32, Tag::x),
          memory::desc({m, k}, wire, Tag::any)};
}

// No fused ReLU post-op: oneDNN 2.6's ReLU (fused or standalone) maps NaN to
// 0, and the contract keeps IEEE semantics. ApplyRelu runs after.
dnnl::inner_product_forward::primitive_desc InnerProductDesc(
    dnnl::prop_kind kind, const PlainDescs& descs) {
  return dnnl::inner_product_forward::primitive_desc(
      dnnl::inner_product_forward::desc(kind, descs.x, descs.any_weights,
                                        descs.bias, descs.y),
      onednn::UserScratchpadAttr(), onednn::CpuEngine());
}

// ReLU's backward pass, g = grad_y ⊙ 1[y > 0], as a select: grad_y's value
// where y > 0, else +0. Never a multiply, so a NaN or ±Inf in grad_y where
// y <= 0, and anything where y is NaN (NaN > 0 is false), gives 0 rather than
// 0·Inf = NaN. One rule for both precisions: `Element` is float or the
// bfloat16 bits (uint16_t, +0 is all zeros), copied as they are where y > 0.
// (oneDNN's eltwise_relu_use_dst_for_bwd multiplies and passes grad_y through
// where y is NaN, so it is not used.) One pass over the [N, M] values.
template <typename Element>
const Element* MaskGradient(const float* y, const void* grad_y,
                            std::vector<Element>& buffer, size_t count) {
  Element* masked = Grown(buffer, count);
  const Element* upstream = static_cast<const Element*>(grad_y);
  for (size_t i = 0; i < count; ++i) {
    // Both loads unconditional, so the compiler can vectorise the select.
    const Element g = upstream[i];
    masked[i] = y[i] > 0.0f ? g : Element{0};
  }
  return masked;
}

}  // namespace

// The forward pass for one batch size, built once and then shared read-only
// by concurrent callers.
struct LinearLayer::ForwardPrimitives {
  uint64_t id = onednn::NextPrimitiveId();
  memory::desc x_desc;  // [N, K] plain
  memory::desc y_desc;  // [N, M] plain
  dnnl::inner_product_forward inner_product;
  memory::desc scratchpad;
  memory weights;  // in the layout inner_product asked for
  memory bias;
};

// The backward pass for one batch size; built only when a gradient is asked.
struct LinearLayer::BackwardPrimitives {
  uint64_t data_id = onednn::NextPrimitiveId();
  uint64_t weights_id = onednn::NextPrimitiveId();
  PlainDescs descs;
  memory::desc grad_weight_desc;  // [M, K] plain
  dnnl::inner_product_backward_data backward_data;
  memory::desc backward_data_scratchpad;
  memory backward_data_weights;
  dnnl::inner_product_backward_weights backward_weights;
  memory::desc backward_weights_scratchpad;
};

LinearLayer::LinearLayer(const LinearWeights& weights,
                         const LinearLayerOptions& options)
    : in_features_(weights.in_features),
      out_features_(weights.out_features),
      has_bias_(!weights.bias.empty()),
      options_(options),
      plain_weight_(weights.weight),
      bias_(has_bias_ ? weights.bias
                      : std::vector<float>(
                            static_cast<size_t>(weights.out_features), 0.0f)),
      forward_cache_(options.max_cached_batch_sizes),
      backward_cache_(options.max_cached_batch_sizes) {}

LinearLayer::~LinearLayer() = default;

absl::StatusOr<std::unique_ptr<LinearLayer>> LinearLayer::Create(
    const LinearWeights& weights, const LinearLayerOptions& options) {
  if (weights.in_features <= 0 || weights.out_features <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer dimensions must be positive, got in_features=",
        weights.in_features, " out_features=", weights.out_features));
  }
  const auto weight_count =
      static_cast<size_t>(weights.in_features * weights.out_features);
  if (weights.weight.size() != weight_count ||
      (!weights.bias.empty() &&
       weights.bias.size() != static_cast<size_t>(weights.out_features))) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight must hold ", weight_count, " values and bias ",
                     weights.out_features, " (or none), got ",
                     weights.weight.size(), " and ", weights.bias.size()));
  }
  if (options.intra_op_threads < 1 || options.max_cached_batch_sizes < 1) {
    return absl::InvalidArgumentError(
        "intra_op_threads and max_cached_batch_sizes must be at least 1");
  }
  std::unique_ptr<LinearLayer> layer;
  // Build the single-row primitives now, so that a oneDNN that cannot
  // serve this layer fails at start-up rather than on the first request.
  const absl::Status built =
      onednn::Guarded("layer set-up", options.intra_op_threads, [&] {
        layer.reset(new LinearLayer(weights, options));
        for (Precision input : {Precision::kFloat32, Precision::kBFloat16}) {
          layer->forward_cache_.GetOrBuild(CacheKey(1, input), [&] {
            return layer->BuildForward(1, input);
          });
          layer->backward_cache_.GetOrBuild(CacheKey(1, input), [&] {
            return layer->BuildBackward(1, input);
          });
        }
      });
  if (!built.ok()) return built;
  return layer;
}

std::string LinearLayer::CpuIsaName() { return onednn::CpuIsaName(); }

dnnl::memory LinearLayer::WeightsIn(const memory::desc& layout) const {
  std::lock_guard<std::mutex> lock(weights_mutex_);
  for (const auto& [desc, reordered] : reordered_weights_) {
    if (desc == layout) return reordered;
  }
  // First primitive to want this layout: reorder the plain weights into it
  // once; every later call reads the copy.
  const memory::desc plain_desc({out_features_, in_features_}, DataType::f32,
                                Tag::oi);
  memory plain = onednn::Wrap(plain_desc, plain_weight_.data());
  memory reordered(layout, onednn::CpuEngine());
  dnnl::stream stream(onednn::CpuEngine());
  dnnl::reorder(plain, reordered).execute(stream, plain, reordered);
  stream.wait();
  reordered_weights_.emplace_back(layout, reordered);
  return reordered;
}

std::shared_ptr<const LinearLayer::ForwardPrimitives> LinearLayer::BuildForward(
    int64_t batch, Precision input) const {
  auto p = std::make_shared<ForwardPrimitives>();
  const PlainDescs descs = DescsFor(batch, in_features_, out_features_, input);
  p->x_desc = descs.x;
  p->y_desc = descs.y;
  // One forward primitive serves both passes, so y has the same bits
  // whether or not a gradient was asked for.
  const auto pd = InnerProductDesc(dnnl::prop_kind::forward_inference, descs);
  p->inner_product = dnnl::inner_product_forward(pd);
  p->scratchpad = pd.scratchpad_desc();
  p->weights = WeightsIn(pd.weights_desc());
  p->bias = onednn::Wrap(descs.bias, bias_.data());
  return p;
}

std::shared_ptr<const LinearLayer::BackwardPrimitives>
LinearLayer::BuildBackward(int64_t batch, Precision input) const {
  auto p = std::make_shared<BackwardPrimitives>();
  p->descs = DescsFor(batch, in_features_, out_features_, input);
  const PlainDescs& descs = p->descs;
  // Plain grad_weight lets oneDNN pick a faster kernel than `any` plus a
  // reorder (measured: 223 -> 104 us at N=1).
  p->grad_weight_desc =
      memory::desc({out_features_, in_features_}, DataType::f32, Tag::oi);
  // The backward descriptors need a training forward as a hint; it is never
  // executed.
  PlainDescs hint_descs = descs;
  hint_descs.y = descs.diff_y;
  const auto training_hint =
      InnerProductDesc(dnnl::prop_kind::forward_training, hint_descs);

  const dnnl::inner_product_backward_data::primitive_desc backward_data_pd(
      dnnl::inner_product_backward_data::desc(descs.grad_x, descs.any_weights,
                                              descs.diff_y),
      onednn::UserScratchpadAttr(), onednn::CpuEngine(), training_hint);
  p->backward_data = dnnl::inner_product_backward_data(backward_data_pd);
  p->backward_data_scratchpad = backward_data_pd.scratchpad_desc();
  p->backward_data_weights = WeightsIn(backward_data_pd.weights_desc());

  const dnnl::inner_product_backward_weights::primitive_desc
      backward_weights_pd(
          dnnl::inner_product_backward_weights::desc(
              descs.x, p->grad_weight_desc, descs.bias, descs.diff_y),
          onednn::UserScratchpadAttr(), onednn::CpuEngine(), training_hint);
  p->backward_weights =
      dnnl::inner_product_backward_weights(backward_weights_pd);
  p->backward_weights_scratchpad = backward_weights_pd.scratchpad_desc();
  return p;
}

absl::Status LinearLayer::CheckBatch(int64_t batch) const {
  if (batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch must be at least 1, got ", batch));
  }
  const int64_t widest = std::max(in_features_, out_features_);
  if (batch > std::numeric_limits<int64_t>::max() / widest / 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch ", batch, " is too large to address"));
  }
  return absl::OkStatus();
}

absl::Status LinearLayer::Forward(int64_t batch, const void* x, Precision input,
                                  float* y) const {
  if (absl::Status valid = CheckBatch(batch); !valid.ok()) return valid;
  if (x == nullptr || y == nullptr) {
    return absl::InvalidArgumentError("Forward needs both x and y buffers");
  }
  return onednn::Guarded("forward", options_.intra_op_threads,
                         [&] { RunForward(batch, x, input, y); });
}

absl::Status LinearLayer::Backward(int64_t batch, const void* x,
                                   Precision input, const float* y,
                                   const void* grad_y,
                                   const GradientOutputs& gradients) const {
  if (absl::Status valid = CheckBatch(batch); !valid.ok()) return valid;
  if (x == nullptr || grad_y == nullptr || (options_.relu && y == nullptr)) {
    return absl::InvalidArgumentError(
        "Backward needs x, grad_y and (after a ReLU) y buffers");
  }
  return onednn::Guarded("backward", options_.intra_op_threads, [&] {
    RunBackward(batch, x, input, y, grad_y, gradients);
  });
}

absl::Status LinearLayer::ForwardBackward(
    int64_t batch, const void* x, const void* grad_y, Precision input, float* y,
    const GradientOutputs& gradients) const {
  if (absl::Status valid = CheckBatch(batch); !valid.ok()) return valid;
  if (x == nullptr || grad_y == nullptr) {
    return absl::InvalidArgumentError(
        "ForwardBackward needs both x and grad_y buffers");
  }
  return onednn::Guarded("forward+backward", options_.intra_op_threads, [&] {
    if (y == nullptr) {
      y = Grown(LocalWorkspace().y, static_cast<size_t>(batch * out_features_));
    }
    RunForward(batch, x, input, y);
    RunBackward(batch, x, input, y, grad_y, gradients);
  });
}

void LinearLayer::RunForward(int64_t batch, const void* x, Precision input,
                             float* y) const {
  const std::shared_ptr<const ForwardPrimitives> p = forward_cache_.GetOrBuild(
      CacheKey(batch, input), [&] { return BuildForward(batch, input); });
  onednn::Execute(p->id, p->inner_product, p->scratchpad,
                  {{DNNL_ARG_SRC, &p->x_desc, x},
                   {DNNL_ARG_WEIGHTS, nullptr, nullptr, &p->weights},
                   {DNNL_ARG_BIAS, nullptr, nullptr, &p->bias},
                   {DNNL_ARG_DST, &p->y_desc, y}});
  if (options_.relu) {
    ApplyRelu(y, static_cast<size_t>(batch * out_features_));
  }
}

void LinearLayer::RunBackward(int64_t batch, const void* x, Precision input,
                              const float* y, const void* grad_y,
                              const GradientOutputs& gradients) const {
  const std::shared_ptr<const BackwardPrimitives> p =
      backward_cache_.GetOrBuild(CacheKey(batch, input),
                                 [&] { return BuildBackward(batch, input); });
  const PlainDescs& descs = p->descs;
  ThreadWorkspace& workspace = LocalWorkspace();
  const auto activations = static_cast<size_t>(batch * out_features_);

  // From y alone: 1[y > 0] equals 1[pre-activation > 0], so no
  // pre-activation has to be kept. Without a ReLU grad_y goes on as it is.
  const void* relu_grad = grad_y;
  if (options_.relu) {
    relu_grad = input == Precision::kFloat32
                    ? static_cast<const void*>(MaskGradient(
                          y, grad_y, workspace.relu_grad, activations))
                    : static_cast<const void*>(MaskGradient(
                          y, grad_y, workspace.relu_grad_bf16, activations));
  }
  if (gradients.grad_x != nullptr) {
    onednn::Execute(
        p->data_id, p->backward_data, p->backward_data_scratchpad,
        {{DNNL_ARG_DIFF_DST, &descs.diff_y, relu_grad},
         {DNNL_ARG_WEIGHTS, nullptr, nullptr, &p->backward_data_weights},
         {DNNL_ARG_DIFF_SRC, &descs.grad_x, gradients.grad_x}});
  }
  if (gradients.grad_weight != nullptr || gradients.grad_bias != nullptr) {
    // One primitive computes both sums; a gradient nobody asked for goes to
    // a per-thread buffer.
    float* grad_weight =
        gradients.grad_weight != nullptr
            ? gradients.grad_weight
            : Grown(workspace.grad_weight,
                    static_cast<size_t>(out_features_ * in_features_));
    float* grad_bias =
        gradients.grad_bias != nullptr
            ? gradients.grad_bias
            : Grown(workspace.grad_bias, static_cast<size_t>(out_features_));
    onednn::Execute(p->weights_id, p->backward_weights,
                    p->backward_weights_scratchpad,
                    {{DNNL_ARG_SRC, &descs.x, x},
                     {DNNL_ARG_DIFF_DST, &descs.diff_y, relu_grad},
                     {DNNL_ARG_DIFF_WEIGHTS, &p->grad_weight_desc, grad_weight},
                     {DNNL_ARG_DIFF_BIAS, &descs.bias, grad_bias}});
  }
}

}  // namespace reluserve
