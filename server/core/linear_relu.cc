#include "server/core/linear_relu.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <new>
#include <unordered_map>

#include "absl/strings/str_cat.h"

namespace reluserve {
namespace {

using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;

constexpr size_t kScratchpadAlignment = 64;

// Per-thread buffers reused across calls: the scratchpad and the backward
// pass's intermediates. Allocating them per call would fault fresh pages in
// on every request.
struct ThreadWorkspace {
  std::vector<uint8_t> scratchpad;
  std::vector<float> y;
  std::vector<float> relu_grad;
  std::vector<float> grad_weight;
  std::vector<float> grad_bias;
};

ThreadWorkspace& LocalWorkspace() {
  thread_local ThreadWorkspace workspace;
  return workspace;
}

float* Grown(std::vector<float>& buffer, size_t count) {
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

void* AlignedScratchpad(size_t bytes) {
  std::vector<uint8_t>& buffer = LocalWorkspace().scratchpad;
  if (buffer.size() < bytes + kScratchpadAlignment) {
    buffer.resize(bytes + kScratchpadAlignment);
  }
  auto address = reinterpret_cast<uintptr_t>(buffer.data());
  address = (address + kScratchpadAlignment - 1) & ~(kScratchpadAlignment - 1);
  return reinterpret_cast<void*>(address);
}

dnnl::primitive_attr UserScratchpadAttr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// Runs `primitive` with `args` plus a scratchpad of the calling thread's.
void Execute(const dnnl::primitive& primitive, const memory::desc& scratchpad,
             const dnnl::engine& engine, dnnl::stream& stream,
             std::unordered_map<int, memory> args) {
  if (scratchpad.get_size() > 0) {
    args.emplace(
        DNNL_ARG_SCRATCHPAD,
        memory(scratchpad, engine, AlignedScratchpad(scratchpad.get_size())));
  }
  primitive.execute(stream, args);
}

// Wraps a caller's buffer; oneDNN only reads from inputs, so dropping const
// here does not let it write into them.
memory Wrap(const memory::desc& desc, const dnnl::engine& engine,
            const float* data) {
  return memory(desc, engine, const_cast<float*>(data));
}

// max(0, v) that lets NaN through, as PyTorch does: one pass over the [N, M]
// output, which is K times smaller than the inner product that made it.
void ApplyRelu(float* values, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    const float v = values[i];
    values[i] = (v > 0.0f || v != v) ? v : 0.0f;
  }
}

}  // namespace

// Everything oneDNN needs for one batch size, built once and then shared
// read-only by concurrent callers.
struct LinearRelu::BatchPrimitives {
  memory::desc x_desc;     // [N, K] plain
  memory::desc y_desc;     // [N, M] plain
  memory::desc bias_desc;  // [M]
  memory::desc grad_weight_desc;

  dnnl::inner_product_forward inference;
  memory::desc inference_scratchpad;
  memory inference_weights;

  dnnl::inner_product_forward training;
  memory::desc training_scratchpad;
  memory training_weights;

  dnnl::eltwise_backward relu_backward;
  memory::desc relu_backward_scratchpad;

  dnnl::inner_product_backward_data backward_data;
  memory::desc backward_data_scratchpad;
  memory backward_data_weights;

  dnnl::inner_product_backward_weights backward_weights;
  memory::desc backward_weights_scratchpad;
};

LinearRelu::LinearRelu(const LinearWeights& weights,
                       const LinearReluOptions& options)
    : in_features_(weights.in_features),
      out_features_(weights.out_features),
      options_(options),
      engine_(dnnl::engine::kind::cpu, 0),
      plain_weight_(weights.weight),
      bias_(weights.bias) {}

LinearRelu::~LinearRelu() = default;

absl::StatusOr<std::unique_ptr<LinearRelu>> LinearRelu::Create(
    const LinearWeights& weights, const LinearReluOptions& options) {
  if (weights.in_features <= 0 || weights.out_features <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layer dimensions must be positive, got in_features=",
        weights.in_features, " out_features=", weights.out_features));
  }
  const auto weight_count =
      static_cast<size_t>(weights.in_features * weights.out_features);
  if (weights.weight.size() != weight_count ||
      weights.bias.size() != static_cast<size_t>(weights.out_features)) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight must hold ", weight_count, " values and bias ",
                     weights.out_features, ", got ", weights.weight.size(),
                     " and ", weights.bias.size()));
  }
  if (options.intra_op_threads < 1 || options.max_cached_batch_sizes < 1) {
    return absl::InvalidArgumentError(
        "intra_op_threads and max_cached_batch_sizes must be at least 1");
  }
  try {
    std::unique_ptr<LinearRelu> layer(new LinearRelu(weights, options));
    // Build the common single-row case now so that a broken oneDNN install
    // fails at start-up rather than on the first request.
    absl::StatusOr<std::shared_ptr<const BatchPrimitives>> warm =
        layer->PrimitivesFor(1);
    if (!warm.ok()) return warm.status();
    return layer;
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
  }
}

std::string LinearRelu::CpuIsaName() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic:
      return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "unknown";
  }
}

dnnl::memory LinearRelu::WeightsIn(const memory::desc& layout) const {
  for (const auto& [desc, reordered] : reordered_weights_) {
    if (desc == layout) return reordered;
  }
  // First primitive to want this layout: reorder the plain weights into it
  // once; every later call reads the copy.
  const memory::desc plain_desc({out_features_, in_features_}, DataType::f32,
                                Tag::oi);
  memory plain = Wrap(plain_desc, engine_, plain_weight_.data());
  memory reordered(layout, engine_);
  dnnl::stream stream(engine_);
  dnnl::reorder(plain, reordered).execute(stream, plain, reordered);
  stream.wait();
  reordered_weights_.emplace_back(layout, reordered);
  return reordered;
}

std::shared_ptr<const LinearRelu::BatchPrimitives> LinearRelu::BuildPrimitives(
    int64_t batch) const {
  auto p = std::make_shared<BatchPrimitives>();
  const memory::dim n = batch, k = in_features_, m = out_features_;
  // Activations and gradients are the caller's plain row-major buffers (no
  // copies); only the weights may take a blocked layout of oneDNN's choice.
  p->x_desc = memory::desc({n, k}, DataType::f32, Tag::nc);
  p->y_desc = memory::desc({n, m}, DataType::f32, Tag::nc);
  p->bias_desc = memory::desc({m}, DataType::f32, Tag::x);
  const memory::desc any_weights({m, k}, DataType::f32, Tag::any);
  // Plain grad_weight lets oneDNN pick a faster kernel than `any` + reorder
  // (measured: 223 -> 104 us at N=1).
  p->grad_weight_desc = memory::desc({m, k}, DataType::f32, Tag::oi);

  // No fused ReLU post-op: oneDNN 2.6's ReLU (fused or standalone) maps NaN
  // to 0, and the contract keeps IEEE semantics. ApplyRelu runs after.
  const dnnl::primitive_attr inner_product_attr = UserScratchpadAttr();

  const dnnl::inner_product_forward::primitive_desc inference_pd(
      dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                        p->x_desc, any_weights, p->bias_desc,
                                        p->y_desc),
      inner_product_attr, engine_);
  p->inference = dnnl::inner_product_forward(inference_pd);
  p->inference_scratchpad = inference_pd.scratchpad_desc();
  p->inference_weights = WeightsIn(inference_pd.weights_desc());

  const dnnl::inner_product_forward::primitive_desc training_pd(
      dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training,
                                        p->x_desc, any_weights, p->bias_desc,
                                        p->y_desc),
      inner_product_attr, engine_);
  p->training = dnnl::inner_product_forward(training_pd);
  p->training_scratchpad = training_pd.scratchpad_desc();
  p->training_weights = WeightsIn(training_pd.weights_desc());

  // ReLU backward from the output: 1[y > 0] equals 1[pre-activation > 0], so
  // no pre-activation has to be kept. The forward desc is only a hint.
  const dnnl::eltwise_forward::primitive_desc relu_hint(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training,
                                  dnnl::algorithm::eltwise_relu_use_dst_for_bwd,
                                  p->y_desc, 0.0f, 0.0f),
      engine_);
  const dnnl::eltwise_backward::primitive_desc relu_backward_pd(
      dnnl::eltwise_backward::desc(
          dnnl::algorithm::eltwise_relu_use_dst_for_bwd, p->y_desc, p->y_desc,
          0.0f, 0.0f),
      UserScratchpadAttr(), engine_, relu_hint);
  p->relu_backward = dnnl::eltwise_backward(relu_backward_pd);
  p->relu_backward_scratchpad = relu_backward_pd.scratchpad_desc();

  const dnnl::inner_product_backward_data::primitive_desc backward_data_pd(
      dnnl::inner_product_backward_data::desc(p->x_desc, any_weights,
                                              p->y_desc),
      UserScratchpadAttr(), engine_, training_pd);
  p->backward_data = dnnl::inner_product_backward_data(backward_data_pd);
  p->backward_data_scratchpad = backward_data_pd.scratchpad_desc();
  p->backward_data_weights = WeightsIn(backward_data_pd.weights_desc());

  const dnnl::inner_product_backward_weights::primitive_desc
      backward_weights_pd(
          dnnl::inner_product_backward_weights::desc(
              p->x_desc, p->grad_weight_desc, p->bias_desc, p->y_desc),
          UserScratchpadAttr(), engine_, training_pd);
  p->backward_weights =
      dnnl::inner_product_backward_weights(backward_weights_pd);
  p->backward_weights_scratchpad = backward_weights_pd.scratchpad_desc();
  return p;
}

absl::StatusOr<std::shared_ptr<const LinearRelu::BatchPrimitives>>
LinearRelu::PrimitivesFor(int64_t batch) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = primitives_by_batch_.find(batch);
  if (found != primitives_by_batch_.end()) {
    batch_lru_.splice(batch_lru_.begin(), batch_lru_, found->second.second);
    return found->second.first;
  }
  std::shared_ptr<const BatchPrimitives> built = BuildPrimitives(batch);
  if (primitives_by_batch_.size() >= options_.max_cached_batch_sizes) {
    // Calls already holding the evicted entry keep it alive until they end.
    primitives_by_batch_.erase(batch_lru_.back());
    batch_lru_.pop_back();
  }
  batch_lru_.push_front(batch);
  primitives_by_batch_.emplace(batch,
                               std::make_pair(built, batch_lru_.begin()));
  return built;
}

namespace {

absl::Status CheckBatch(int64_t batch, int64_t in_features,
                        int64_t out_features) {
  if (batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch must be at least 1, got ", batch));
  }
  const int64_t widest = std::max(in_features, out_features);
  if (batch > std::numeric_limits<int64_t>::max() / widest / 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch ", batch, " is too large to address"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LinearRelu::Forward(int64_t batch, const float* x,
                                 float* y) const {
  if (absl::Status valid = CheckBatch(batch, in_features_, out_features_);
      !valid.ok()) {
    return valid;
  }
  if (x == nullptr || y == nullptr) {
    return absl::InvalidArgumentError("Forward needs both x and y buffers");
  }
  try {
    // This thread's OpenMP team size: the setting is per calling thread.
    omp_set_num_threads(options_.intra_op_threads);
    absl::StatusOr<std::shared_ptr<const BatchPrimitives>> primitives =
        PrimitivesFor(batch);
    if (!primitives.ok()) return primitives.status();
    const BatchPrimitives& p = **primitives;
    dnnl::stream stream(engine_);
    Execute(p.inference, p.inference_scratchpad, engine_, stream,
            {{DNNL_ARG_SRC, Wrap(p.x_desc, engine_, x)},
             {DNNL_ARG_WEIGHTS, p.inference_weights},
             {DNNL_ARG_BIAS, Wrap(p.bias_desc, engine_, bias_.data())},
             {DNNL_ARG_DST, memory(p.y_desc, engine_, y)}});
    stream.wait();
    ApplyRelu(y, static_cast<size_t>(batch * out_features_));
    return absl::OkStatus();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN forward: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory in forward");
  }
}

absl::Status LinearRelu::ForwardBackward(
    int64_t batch, const float* x, const float* grad_y, float* y,
    const GradientOutputs& gradients) const {
  if (absl::Status valid = CheckBatch(batch, in_features_, out_features_);
      !valid.ok()) {
    return valid;
  }
  if (x == nullptr || grad_y == nullptr) {
    return absl::InvalidArgumentError(
        "ForwardBackward needs both x and grad_y buffers");
  }
  try {
    return RunForwardBackward(batch, x, grad_y, y, gradients);
  } catch (const dnnl::error& e) {
    return absl::InternalError(
        absl::StrCat("oneDNN forward+backward: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of memory in forward+backward");
  }
}

absl::Status LinearRelu::RunForwardBackward(
    int64_t batch, const float* x, const float* grad_y, float* y,
    const GradientOutputs& gradients) const {
  omp_set_num_threads(options_.intra_op_threads);
  absl::StatusOr<std::shared_ptr<const BatchPrimitives>> primitives =
      PrimitivesFor(batch);
  if (!primitives.ok()) return primitives.status();
  const BatchPrimitives& p = **primitives;

  ThreadWorkspace& workspace = LocalWorkspace();
  const auto activations = static_cast<size_t>(batch * out_features_);
  if (y == nullptr) y = Grown(workspace.y, activations);
  float* relu_grad = Grown(workspace.relu_grad, activations);

  dnnl::stream stream(engine_);
  const memory x_memory = Wrap(p.x_desc, engine_, x);
  const memory y_memory(p.y_desc, engine_, y);
  const memory relu_grad_memory(p.y_desc, engine_, relu_grad);

  Execute(p.training, p.training_scratchpad, engine_, stream,
          {{DNNL_ARG_SRC, x_memory},
           {DNNL_ARG_WEIGHTS, p.training_weights},
           {DNNL_ARG_BIAS, Wrap(p.bias_desc, engine_, bias_.data())},
           {DNNL_ARG_DST, y_memory}});
  stream.wait();
  ApplyRelu(y, activations);
  // relu_grad = grad_y where y > 0, else 0.
  Execute(p.relu_backward, p.relu_backward_scratchpad, engine_, stream,
          {{DNNL_ARG_DST, y_memory},
           {DNNL_ARG_DIFF_DST, Wrap(p.y_desc, engine_, grad_y)},
           {DNNL_ARG_DIFF_SRC, relu_grad_memory}});
  if (gradients.grad_x != nullptr) {
    Execute(p.backward_data, p.backward_data_scratchpad, engine_, stream,
            {{DNNL_ARG_DIFF_DST, relu_grad_memory},
             {DNNL_ARG_WEIGHTS, p.backward_data_weights},
             {DNNL_ARG_DIFF_SRC, memory(p.x_desc, engine_, gradients.grad_x)}});
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
    Execute(p.backward_weights, p.backward_weights_scratchpad, engine_, stream,
            {{DNNL_ARG_SRC, x_memory},
             {DNNL_ARG_DIFF_DST, relu_grad_memory},
             {DNNL_ARG_DIFF_WEIGHTS,
              memory(p.grad_weight_desc, engine_, grad_weight)},
             {DNNL_ARG_DIFF_BIAS, memory(p.bias_desc, engine_, grad_bias)}});
  }
  stream.wait();
  return absl::OkStatus();
}

}  // namespace reluserve
