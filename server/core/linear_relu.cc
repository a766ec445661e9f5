#include "server/core/linear_relu.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <new>
#include <unordered_map>
#include <utility>

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
  std::vector<uint16_t> relu_grad_bf16;
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

// One process-wide CPU engine, never destroyed: per-thread streams and
// memory objects made on it may outlive any one LinearRelu.
const dnnl::engine& CpuEngine() {
  static const dnnl::engine* engine =
      new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

// One argument of a primitive: either a caller's buffer, re-pointed every
// call, or a memory object fixed for the primitive's life (weights, bias).
struct Binding {
  int id;
  const memory::desc* desc = nullptr;
  const void* data = nullptr;
  const memory* fixed = nullptr;
};

// The calling thread's stream and, per primitive it has run, the argument
// memory objects. Making memory objects costs more than an N=1 kernel's
// work, so each is made once and only re-pointed with set_data_handle.
struct ThreadBindings {
  dnnl::stream stream{CpuEngine()};
  std::unordered_map<uint64_t, std::unordered_map<int, memory>> args;
};

ThreadBindings& LocalBindings() {
  thread_local ThreadBindings bindings;
  return bindings;
}

// Evicted primitives leave their entries behind; start over past this.
constexpr size_t kMaxBoundPrimitives = 512;

// Runs `primitive` on the calling thread's stream with `bindings` and a
// scratchpad of the thread's. `key` names the primitive for this thread
// (unique for the process's life).
void Execute(uint64_t key, const dnnl::primitive& primitive,
             const memory::desc& scratchpad,
             std::initializer_list<Binding> bindings) {
  ThreadBindings& local = LocalBindings();
  auto found = local.args.find(key);
  if (found == local.args.end()) {
    if (local.args.size() >= kMaxBoundPrimitives) local.args.clear();
    std::unordered_map<int, memory> made;
    for (const Binding& binding : bindings) {
      made.emplace(binding.id,
                   binding.fixed != nullptr
                       ? *binding.fixed
                       : memory(*binding.desc, CpuEngine(), DNNL_MEMORY_NONE));
    }
    if (scratchpad.get_size() > 0) {
      made.emplace(DNNL_ARG_SCRATCHPAD,
                   memory(scratchpad, CpuEngine(), DNNL_MEMORY_NONE));
    }
    found = local.args.emplace(key, std::move(made)).first;
  }
  std::unordered_map<int, memory>& args = found->second;
  for (const Binding& binding : bindings) {
    if (binding.fixed == nullptr) {
      args.at(binding.id).set_data_handle(const_cast<void*>(binding.data));
    }
  }
  if (scratchpad.get_size() > 0) {
    args.at(DNNL_ARG_SCRATCHPAD)
        .set_data_handle(AlignedScratchpad(scratchpad.get_size()));
  }
  primitive.execute(local.stream, args);
}

uint64_t NextPrimitivesId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1);
}

// Wraps a caller's buffer; oneDNN only reads from inputs, so dropping const
// here does not let it write into them.
memory Wrap(const memory::desc& desc, const dnnl::engine& engine,
            const void* data) {
  return memory(desc, engine, const_cast<void*>(data));
}

DataType OneDnnType(Precision precision) {
  return precision == Precision::kBFloat16 ? DataType::bf16 : DataType::f32;
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
  const DataType wire = OneDnnType(input);
  return {memory::desc({n, k}, wire, Tag::nc),
          memory::desc({n, m}, wire, Tag::nc),
          memory::desc({n, m}, DataType::f32, Tag::nc),
          memory::desc({n, k}, DataType::f32, Tag::nc),
          memory::desc({m}, DataType::f32, Tag::x),
          memory::desc({m, k}, wire, Tag::any)};
}

}  // namespace

// The forward pass for one batch size, built once and then shared read-only
// by concurrent callers.
struct LinearRelu::ForwardPrimitives {
  uint64_t id = NextPrimitivesId();
  memory::desc x_desc;     // [N, K] plain
  memory::desc y_desc;     // [N, M] plain
  memory::desc bias_desc;  // [M]
  dnnl::inner_product_forward inner_product;
  memory::desc scratchpad;
  memory weights;  // in the layout inner_product asked for
  memory bias;
};

// The backward pass for one batch size; built only when a gradient is asked.
struct LinearRelu::BackwardPrimitives {
  uint64_t id = NextPrimitivesId();
  PlainDescs descs;
  memory::desc grad_weight_desc;  // [M, K] plain
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
      engine_(CpuEngine()),
      plain_weight_(weights.weight),
      bias_(weights.bias),
      forward_cache_(options.max_cached_batch_sizes),
      backward_cache_(options.max_cached_batch_sizes) {}

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
    // Build the single-row primitives now, so that a oneDNN that cannot
    // serve this layer fails at start-up rather than on the first request.
    omp_set_num_threads(options.intra_op_threads);
    for (Precision input : {Precision::kFloat32, Precision::kBFloat16}) {
      layer->forward_cache_.GetOrBuild(
          CacheKey(1, input), [&] { return layer->BuildForward(1, input); });
      layer->backward_cache_.GetOrBuild(
          CacheKey(1, input), [&] { return layer->BuildBackward(1, input); });
    }
    return layer;
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::InternalError("out of memory while building the layer");
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
  std::lock_guard<std::mutex> lock(weights_mutex_);
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

namespace {

// No fused ReLU post-op: oneDNN 2.6's ReLU (fused or standalone) maps NaN to
// 0, and the contract keeps IEEE semantics. ApplyRelu runs after.
dnnl::inner_product_forward::primitive_desc InnerProductDesc(
    dnnl::prop_kind kind, const PlainDescs& descs, const dnnl::engine& engine) {
  return dnnl::inner_product_forward::primitive_desc(
      dnnl::inner_product_forward::desc(kind, descs.x, descs.any_weights,
                                        descs.bias, descs.y),
      UserScratchpadAttr(), engine);
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
  if (buffer.size() < count) buffer.resize(count);
  const Element* upstream = static_cast<const Element*>(grad_y);
  Element* masked = buffer.data();
  for (size_t i = 0; i < count; ++i) {
    // Both loads unconditional, so the compiler can vectorise the select.
    const Element g = upstream[i];
    masked[i] = y[i] > 0.0f ? g : Element{0};
  }
  return masked;
}

}  // namespace

std::shared_ptr<const LinearRelu::ForwardPrimitives> LinearRelu::BuildForward(
    int64_t batch, Precision input) const {
  auto p = std::make_shared<ForwardPrimitives>();
  const PlainDescs descs = DescsFor(batch, in_features_, out_features_, input);
  p->x_desc = descs.x;
  p->y_desc = descs.y;
  p->bias_desc = descs.bias;
  // One forward primitive serves both passes, so y has the same bits
  // whether or not a gradient was asked for.
  const auto pd =
      InnerProductDesc(dnnl::prop_kind::forward_inference, descs, engine_);
  p->inner_product = dnnl::inner_product_forward(pd);
  p->scratchpad = pd.scratchpad_desc();
  p->weights = WeightsIn(pd.weights_desc());
  p->bias = Wrap(descs.bias, engine_, bias_.data());
  return p;
}

std::shared_ptr<const LinearRelu::BackwardPrimitives> LinearRelu::BuildBackward(
    int64_t batch, Precision input) const {
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
      InnerProductDesc(dnnl::prop_kind::forward_training, hint_descs, engine_);

  const dnnl::inner_product_backward_data::primitive_desc backward_data_pd(
      dnnl::inner_product_backward_data::desc(descs.grad_x, descs.any_weights,
                                              descs.diff_y),
      UserScratchpadAttr(), engine_, training_hint);
  p->backward_data = dnnl::inner_product_backward_data(backward_data_pd);
  p->backward_data_scratchpad = backward_data_pd.scratchpad_desc();
  p->backward_data_weights = WeightsIn(backward_data_pd.weights_desc());

  const dnnl::inner_product_backward_weights::primitive_desc
      backward_weights_pd(
          dnnl::inner_product_backward_weights::desc(
              descs.x, p->grad_weight_desc, descs.bias, descs.diff_y),
          UserScratchpadAttr(), engine_, training_hint);
  p->backward_weights =
      dnnl::inner_product_backward_weights(backward_weights_pd);
  p->backward_weights_scratchpad = backward_weights_pd.scratchpad_desc();
  return p;
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

// Runs `compute`, turning oneDNN's exceptions into a status at the core's
// edge.
template <typename Compute>
absl::Status Guarded(const char* what, int intra_op_threads,
                     Compute&& compute) {
  try {
    // This thread's OpenMP team size: the setting is per calling thread.
    omp_set_num_threads(intra_op_threads);
    compute();
    return absl::OkStatus();
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN ", what, ": ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::InternalError(absl::StrCat("out of memory in ", what));
  }
}

}  // namespace

absl::Status LinearRelu::Forward(int64_t batch, const void* x, Precision input,
                                 float* y) const {
  if (absl::Status valid = CheckBatch(batch, in_features_, out_features_);
      !valid.ok()) {
    return valid;
  }
  if (x == nullptr || y == nullptr) {
    return absl::InvalidArgumentError("Forward needs both x and y buffers");
  }
  return Guarded("forward", options_.intra_op_threads,
                 [&] { RunForward(batch, x, input, y); });
}

absl::Status LinearRelu::ForwardBackward(
    int64_t batch, const void* x, const void* grad_y, Precision input, float* y,
    const GradientOutputs& gradients) const {
  if (absl::Status valid = CheckBatch(batch, in_features_, out_features_);
      !valid.ok()) {
    return valid;
  }
  if (x == nullptr || grad_y == nullptr) {
    return absl::InvalidArgumentError(
        "ForwardBackward needs both x and grad_y buffers");
  }
  return Guarded("forward+backward", options_.intra_op_threads, [&] {
    if (y == nullptr) {
      y = Grown(LocalWorkspace().y, static_cast<size_t>(batch * out_features_));
    }
    RunForward(batch, x, input, y);
    RunBackward(batch, x, grad_y, input, y, gradients);
  });
}

// The CPU engine runs primitives synchronously on the calling thread (the
// OpenMP runtime), so each Execute has finished before the next one may grow
// the thread's scratchpad.
void LinearRelu::RunForward(int64_t batch, const void* x, Precision input,
                            float* y) const {
  const std::shared_ptr<const ForwardPrimitives> p = forward_cache_.GetOrBuild(
      CacheKey(batch, input), [&] { return BuildForward(batch, input); });
  // Keys: 4·id + 1..2 for an entry's backward primitives, 4·id + 3 here.
  Execute(p->id * 4 + 3, p->inner_product, p->scratchpad,
          {{DNNL_ARG_SRC, &p->x_desc, x},
           {DNNL_ARG_WEIGHTS, nullptr, nullptr, &p->weights},
           {DNNL_ARG_BIAS, nullptr, nullptr, &p->bias},
           {DNNL_ARG_DST, &p->y_desc, y}});
  LocalBindings().stream.wait();
  ApplyRelu(y, static_cast<size_t>(batch * out_features_));
}

void LinearRelu::RunBackward(int64_t batch, const void* x, const void* grad_y,
                             Precision input, const float* y,
                             const GradientOutputs& gradients) const {
  const std::shared_ptr<const BackwardPrimitives> p =
      backward_cache_.GetOrBuild(CacheKey(batch, input),
                                 [&] { return BuildBackward(batch, input); });
  const PlainDescs& descs = p->descs;
  ThreadWorkspace& workspace = LocalWorkspace();
  const auto activations = static_cast<size_t>(batch * out_features_);
  // Keys of this entry's primitives in the thread's bindings.
  const uint64_t data_key = p->id * 4 + 1, weights_key = p->id * 4 + 2;

  // From y alone: 1[y > 0] equals 1[pre-activation > 0], so no
  // pre-activation has to be kept.
  const void* relu_grad =
      input == Precision::kFloat32
          ? static_cast<const void*>(
                MaskGradient(y, grad_y, workspace.relu_grad, activations))
          : static_cast<const void*>(
                MaskGradient(y, grad_y, workspace.relu_grad_bf16, activations));
  if (gradients.grad_x != nullptr) {
    Execute(data_key, p->backward_data, p->backward_data_scratchpad,
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
    Execute(weights_key, p->backward_weights, p->backward_weights_scratchpad,
            {{DNNL_ARG_SRC, &descs.x, x},
             {DNNL_ARG_DIFF_DST, &descs.diff_y, relu_grad},
             {DNNL_ARG_DIFF_WEIGHTS, &p->grad_weight_desc, grad_weight},
             {DNNL_ARG_DIFF_BIAS, &descs.bias, grad_bias}});
  }
  LocalBindings().stream.wait();
}

}  // namespace reluserve
