// reluserve-core-bench: reluserve::LinearLayer against the raw oneDNN
// primitives it wraps, and a SequentialModel (3 layers) against the same stack
// of raw primitives, forward and forward+backward, for the batch sizes the
// server sees, on 1 and 2 OpenMP threads. After the usual table it prints the
// ours / raw throughput ratio of every pair.
#include <benchmark/benchmark.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bench/bench_main.h"
#include "dnnl.hpp"
#include "server/core/linear_layer.h"
#include "server/core/sequential_model.h"
#include "server/core/weights.h"

namespace {

using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;

constexpr int64_t kInFeatures = 3072;  // K
constexpr int64_t kOutFeatures = 100;  // M
constexpr uint64_t kWeightSeed = 42;
constexpr int64_t kBatchSizes[] = {1, 32, 100, 256, 1024};
constexpr int kOmpThreads[] = {1, 2};
constexpr double kWarmUpSeconds = 0.02;

// Forward: the inner product's multiply-adds, 2·N·K·M.
double ForwardFlops(int64_t n) {
  return 2.0 * static_cast<double>(n) * kInFeatures * kOutFeatures;
}

// Forward+backward: three N·K·M products (forward, grad_x, grad_weight) plus
// the N·M terms: bias add, ReLU, ReLU backward and the grad_bias sum.
double ForwardBackwardFlops(int64_t n) {
  return 3.0 * ForwardFlops(n) + 4.0 * static_cast<double>(n) * kOutFeatures;
}

// Non-zero values of either sign (about half of y stays positive through the
// ReLU) written to every page before timing: untouched zero pages halved
// oneDNN's throughput in an earlier test.
std::vector<float> RandomBuffer(int64_t count, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::uniform_real_distribution<float> magnitude(0.05f, 1.0f);
  std::bernoulli_distribution negative(0.5);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) {
    v = negative(generator) ? -magnitude(generator) : magnitude(generator);
  }
  return values;
}

const reluserve::LinearWeights& Weights() {
  static const reluserve::LinearWeights weights =
      reluserve::MakeDefaultWeights(kInFeatures, kOutFeatures, kWeightSeed);
  return weights;
}

void SetCounters(benchmark::State& state, double flops_per_iteration) {
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops_per_iteration * iterations / 1e9, benchmark::Counter::kIsRate);
  state.counters["rows/s"] =
      benchmark::Counter(static_cast<double>(state.range(0)) * iterations,
                         benchmark::Counter::kIsRate);
}

// The weights [M, K] in the layout `layout` asks for, reordered once.
memory ReorderedWeights(const memory::desc& layout, const dnnl::engine& engine,
                        dnnl::stream& stream) {
  const memory::desc plain_desc({kOutFeatures, kInFeatures}, DataType::f32,
                                Tag::oi);
  memory plain(plain_desc, engine, const_cast<float*>(Weights().weight.data()));
  if (layout == plain_desc) return plain;
  memory reordered(layout, engine);
  dnnl::reorder(plain, reordered).execute(stream, plain, reordered);
  stream.wait();
  return reordered;
}

// The floor: what a hand-written oneDNN program does. Weights in the layout
// the primitive prefers, ReLU fused as a post-op, the default (primitive
// owned) scratchpad, and every memory object made once.
void BM_RawForward(benchmark::State& state) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));

  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc x_desc({n, kInFeatures}, DataType::f32, Tag::nc);
  const memory::desc any_weights_desc({kOutFeatures, kInFeatures},
                                      DataType::f32, Tag::any);
  const memory::desc bias_desc({kOutFeatures}, DataType::f32, Tag::x);
  const memory::desc y_desc({n, kOutFeatures}, DataType::f32, Tag::nc);

  dnnl::post_ops relu;
  relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(relu);
  const dnnl::inner_product_forward::primitive_desc pd(
      dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                        x_desc, any_weights_desc, bias_desc,
                                        y_desc),
      attr, engine);
  const dnnl::inner_product_forward inner_product(pd);

  std::vector<float> x = RandomBuffer(n * kInFeatures, 1);
  std::vector<float> y = RandomBuffer(n * kOutFeatures, 2);
  std::vector<float> bias = Weights().bias;
  const std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, memory(x_desc, engine, x.data())},
      {DNNL_ARG_WEIGHTS, ReorderedWeights(pd.weights_desc(), engine, stream)},
      {DNNL_ARG_BIAS, memory(bias_desc, engine, bias.data())},
      {DNNL_ARG_DST, memory(y_desc, engine, y.data())}};

  for (auto _ : state) {
    inner_product.execute(stream, args);
    stream.wait();
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, ForwardFlops(n));
}

// The floor for a training step: forward_training with the fused ReLU, ReLU
// backward from its output, then grad_x and grad_weight+grad_bias; grad_weight
// in the plain [M, K] layout a caller gets back.
void BM_RawForwardBackward(benchmark::State& state) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));

  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc x_desc({n, kInFeatures}, DataType::f32, Tag::nc);
  const memory::desc any_weights_desc({kOutFeatures, kInFeatures},
                                      DataType::f32, Tag::any);
  const memory::desc plain_weights_desc({kOutFeatures, kInFeatures},
                                        DataType::f32, Tag::oi);
  const memory::desc bias_desc({kOutFeatures}, DataType::f32, Tag::x);
  const memory::desc y_desc({n, kOutFeatures}, DataType::f32, Tag::nc);

  dnnl::post_ops relu;
  relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(relu);
  const dnnl::inner_product_forward::primitive_desc forward_pd(
      dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training,
                                        x_desc, any_weights_desc, bias_desc,
                                        y_desc),
      attr, engine);
  const dnnl::inner_product_forward forward(forward_pd);

  const dnnl::eltwise_forward::primitive_desc relu_hint(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training,
                                  dnnl::algorithm::eltwise_relu_use_dst_for_bwd,
                                  y_desc, 0.0f, 0.0f),
      engine);
  const dnnl::eltwise_backward::primitive_desc relu_backward_pd(
      dnnl::eltwise_backward::desc(
          dnnl::algorithm::eltwise_relu_use_dst_for_bwd, y_desc, y_desc, 0.0f,
          0.0f),
      engine, relu_hint);
  const dnnl::eltwise_backward relu_backward(relu_backward_pd);

  const dnnl::inner_product_backward_data::primitive_desc backward_data_pd(
      dnnl::inner_product_backward_data::desc(x_desc, any_weights_desc, y_desc),
      engine, forward_pd);
  const dnnl::inner_product_backward_data backward_data(backward_data_pd);

  const dnnl::inner_product_backward_weights::primitive_desc
      backward_weights_pd(dnnl::inner_product_backward_weights::desc(
                              x_desc, plain_weights_desc, bias_desc, y_desc),
                          engine, forward_pd);
  const dnnl::inner_product_backward_weights backward_weights(
      backward_weights_pd);

  std::vector<float> x = RandomBuffer(n * kInFeatures, 1);
  std::vector<float> y = RandomBuffer(n * kOutFeatures, 2);
  std::vector<float> grad_y = RandomBuffer(n * kOutFeatures, 3);
  std::vector<float> relu_grad = RandomBuffer(n * kOutFeatures, 4);
  std::vector<float> grad_x = RandomBuffer(n * kInFeatures, 5);
  std::vector<float> grad_weight = RandomBuffer(kOutFeatures * kInFeatures, 6);
  std::vector<float> grad_bias = RandomBuffer(kOutFeatures, 7);
  std::vector<float> bias = Weights().bias;

  const memory x_memory(x_desc, engine, x.data());
  const memory y_memory(y_desc, engine, y.data());
  const memory relu_grad_memory(y_desc, engine, relu_grad.data());
  const std::unordered_map<int, memory> forward_args = {
      {DNNL_ARG_SRC, x_memory},
      {DNNL_ARG_WEIGHTS,
       ReorderedWeights(forward_pd.weights_desc(), engine, stream)},
      {DNNL_ARG_BIAS, memory(bias_desc, engine, bias.data())},
      {DNNL_ARG_DST, y_memory}};
  const std::unordered_map<int, memory> relu_backward_args = {
      {DNNL_ARG_DST, y_memory},
      {DNNL_ARG_DIFF_DST, memory(y_desc, engine, grad_y.data())},
      {DNNL_ARG_DIFF_SRC, relu_grad_memory}};
  const std::unordered_map<int, memory> backward_data_args = {
      {DNNL_ARG_DIFF_DST, relu_grad_memory},
      {DNNL_ARG_WEIGHTS,
       ReorderedWeights(backward_data_pd.weights_desc(), engine, stream)},
      {DNNL_ARG_DIFF_SRC, memory(x_desc, engine, grad_x.data())}};
  const std::unordered_map<int, memory> backward_weights_args = {
      {DNNL_ARG_SRC, x_memory},
      {DNNL_ARG_DIFF_DST, relu_grad_memory},
      {DNNL_ARG_DIFF_WEIGHTS,
       memory(plain_weights_desc, engine, grad_weight.data())},
      {DNNL_ARG_DIFF_BIAS, memory(bias_desc, engine, grad_bias.data())}};

  for (auto _ : state) {
    forward.execute(stream, forward_args);
    relu_backward.execute(stream, relu_backward_args);
    backward_data.execute(stream, backward_data_args);
    backward_weights.execute(stream, backward_weights_args);
    stream.wait();
    benchmark::DoNotOptimize(grad_weight.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, ForwardBackwardFlops(n));
}

std::unique_ptr<reluserve::LinearLayer> MakeLayer(benchmark::State& state) {
  reluserve::LinearLayerOptions options;
  options.intra_op_threads = static_cast<int>(state.range(1));
  auto layer = reluserve::LinearLayer::Create(Weights(), options);
  if (!layer.ok()) {
    state.SkipWithError(std::string(layer.status().message()).c_str());
    return nullptr;
  }
  return std::move(*layer);
}

void BM_LinearReluForward(benchmark::State& state) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  const std::unique_ptr<reluserve::LinearLayer> layer = MakeLayer(state);
  if (layer == nullptr) return;
  std::vector<float> x = RandomBuffer(n * kInFeatures, 1);
  std::vector<float> y = RandomBuffer(n * kOutFeatures, 2);

  for (auto _ : state) {
    const absl::Status status = layer->Forward(n, x.data(), y.data());
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, ForwardFlops(n));
}

void BM_LinearReluForwardBackward(benchmark::State& state) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  const std::unique_ptr<reluserve::LinearLayer> layer = MakeLayer(state);
  if (layer == nullptr) return;
  std::vector<float> x = RandomBuffer(n * kInFeatures, 1);
  std::vector<float> y = RandomBuffer(n * kOutFeatures, 2);
  std::vector<float> grad_y = RandomBuffer(n * kOutFeatures, 3);
  std::vector<float> grad_x = RandomBuffer(n * kInFeatures, 5);
  std::vector<float> grad_weight = RandomBuffer(kOutFeatures * kInFeatures, 6);
  std::vector<float> grad_bias = RandomBuffer(kOutFeatures, 7);
  const reluserve::GradientOutputs gradients{grad_x.data(), grad_weight.data(),
                                             grad_bias.data()};

  for (auto _ : state) {
    const absl::Status status =
        layer->ForwardBackward(n, x.data(), grad_y.data(), y.data(), gradients);
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(grad_weight.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, ForwardBackwardFlops(n));
}

// A stack as a CIFAR MLP would have it: 3072 -> 256 -> 128 -> 10, a ReLU
// after the first two Linear layers, logits from the last.
constexpr int64_t kStackWidths[] = {3072, 256, 128, 10};
constexpr size_t kStackDepth = 3;

bool StackRelu(size_t layer) { return layer + 1 < kStackDepth; }

const std::vector<reluserve::LinearWeights>& StackWeights() {
  static const auto* weights = [] {
    auto* made = new std::vector<reluserve::LinearWeights>;
    for (size_t i = 0; i < kStackDepth; ++i) {
      made->push_back(reluserve::MakeDefaultWeights(
          kStackWidths[i], kStackWidths[i + 1], kWeightSeed + i));
    }
    return made;
  }();
  return *weights;
}

double StackForwardFlops(int64_t n) {
  double flops = 0;
  for (size_t i = 0; i < kStackDepth; ++i) {
    flops +=
        2.0 * static_cast<double>(n) * kStackWidths[i] * kStackWidths[i + 1];
  }
  return flops;
}

// grad_x, grad_weight and the forward: three products per layer.
double StackForwardBackwardFlops(int64_t n) {
  return 3.0 * StackForwardFlops(n);
}

// The floor for a stack: what a hand-written oneDNN program does, layer by
// layer: forward_training with the ReLU fused where there is one; backward
// from the top, ReLU backward from each layer's output, grad of its input
// and of its weights (plain [M, K]) and bias. Every memory object made once.
class RawStack {
 public:
  RawStack(int64_t n, bool backward)
      : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    const auto kind = backward ? dnnl::prop_kind::forward_training
                               : dnnl::prop_kind::forward_inference;
    activations_.push_back(RandomBuffer(n * kStackWidths[0], 1));
    for (size_t i = 0; i < kStackDepth; ++i) {
      const int64_t k = kStackWidths[i], m = kStackWidths[i + 1];
      Layer& layer = layers_.emplace_back();
      layer.in_desc = memory::desc({n, k}, DataType::f32, Tag::nc);
      layer.out_desc = memory::desc({n, m}, DataType::f32, Tag::nc);
      const memory::desc any_weights({m, k}, DataType::f32, Tag::any);
      const memory::desc plain_weights({m, k}, DataType::f32, Tag::oi);
      const memory::desc bias_desc({m}, DataType::f32, Tag::x);
      dnnl::primitive_attr attr;
      if (StackRelu(i)) {
        dnnl::post_ops relu;
        relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
        attr.set_post_ops(relu);
      }
      const dnnl::inner_product_forward::primitive_desc forward_pd(
          dnnl::inner_product_forward::desc(kind, layer.in_desc, any_weights,
                                            bias_desc, layer.out_desc),
          attr, engine_);
      layer.forward = dnnl::inner_product_forward(forward_pd);
      activations_.push_back(RandomBuffer(n * m, 10 + i));
      layer.bias = StackWeights()[i].bias;
      layer.forward_args = {
          {DNNL_ARG_SRC, Wrap(layer.in_desc, activations_[i])},
          {DNNL_ARG_WEIGHTS, Reordered(forward_pd.weights_desc(), i)},
          {DNNL_ARG_BIAS, Wrap(bias_desc, layer.bias)},
          {DNNL_ARG_DST, Wrap(layer.out_desc, activations_[i + 1])}};
      if (!backward) continue;
      layer.diff_out = RandomBuffer(n * m, 20 + i);
      layer.masked = RandomBuffer(n * m, 30 + i);
      layer.diff_in = RandomBuffer(n * k, 40 + i);
      layer.grad_weight = RandomBuffer(m * k, 50 + i);
      layer.grad_bias = RandomBuffer(m, 60 + i);
      const memory masked = Wrap(layer.out_desc, layer.masked);
      if (StackRelu(i)) {
        const dnnl::eltwise_forward::primitive_desc hint(
            dnnl::eltwise_forward::desc(
                dnnl::prop_kind::forward_training,
                dnnl::algorithm::eltwise_relu_use_dst_for_bwd, layer.out_desc,
                0.0f, 0.0f),
            engine_);
        layer.relu_backward =
            dnnl::eltwise_backward(dnnl::eltwise_backward::primitive_desc(
                dnnl::eltwise_backward::desc(
                    dnnl::algorithm::eltwise_relu_use_dst_for_bwd,
                    layer.out_desc, layer.out_desc, 0.0f, 0.0f),
                engine_, hint));
        layer.relu_args = {
            {DNNL_ARG_DST, Wrap(layer.out_desc, activations_[i + 1])},
            {DNNL_ARG_DIFF_DST, Wrap(layer.out_desc, layer.diff_out)},
            {DNNL_ARG_DIFF_SRC, masked}};
      }
      const memory diff =
          StackRelu(i) ? masked : Wrap(layer.out_desc, layer.diff_out);
      const dnnl::inner_product_backward_data::primitive_desc data_pd(
          dnnl::inner_product_backward_data::desc(layer.in_desc, any_weights,
                                                  layer.out_desc),
          engine_, forward_pd);
      layer.backward_data = dnnl::inner_product_backward_data(data_pd);
      layer.data_args = {
          {DNNL_ARG_DIFF_DST, diff},
          {DNNL_ARG_WEIGHTS, Reordered(data_pd.weights_desc(), i)},
          {DNNL_ARG_DIFF_SRC, Wrap(layer.in_desc, layer.diff_in)}};
      const dnnl::inner_product_backward_weights::primitive_desc weights_pd(
          dnnl::inner_product_backward_weights::desc(
              layer.in_desc, plain_weights, bias_desc, layer.out_desc),
          engine_, forward_pd);
      layer.backward_weights = dnnl::inner_product_backward_weights(weights_pd);
      layer.weights_args = {
          {DNNL_ARG_SRC, Wrap(layer.in_desc, activations_[i])},
          {DNNL_ARG_DIFF_DST, diff},
          {DNNL_ARG_DIFF_WEIGHTS, Wrap(plain_weights, layer.grad_weight)},
          {DNNL_ARG_DIFF_BIAS, Wrap(bias_desc, layer.grad_bias)}};
    }
    // Each layer's input gradient is the one below's upstream gradient.
    for (size_t i = 1; i < layers_.size() && backward; ++i) {
      layers_[i].data_args[DNNL_ARG_DIFF_SRC] =
          Wrap(layers_[i].in_desc, layers_[i - 1].diff_out);
    }
  }

  void Forward() {
    for (Layer& layer : layers_)
      layer.forward.execute(stream_, layer.forward_args);
    stream_.wait();
  }

  void ForwardBackward() {
    for (Layer& layer : layers_)
      layer.forward.execute(stream_, layer.forward_args);
    for (size_t i = layers_.size(); i-- > 0;) {
      Layer& layer = layers_[i];
      if (StackRelu(i)) layer.relu_backward.execute(stream_, layer.relu_args);
      layer.backward_data.execute(stream_, layer.data_args);
      layer.backward_weights.execute(stream_, layer.weights_args);
    }
    stream_.wait();
  }

  const float* output() const { return activations_.back().data(); }

 private:
  struct Layer {
    memory::desc in_desc, out_desc;
    dnnl::inner_product_forward forward;
    dnnl::eltwise_backward relu_backward;
    dnnl::inner_product_backward_data backward_data;
    dnnl::inner_product_backward_weights backward_weights;
    std::unordered_map<int, memory> forward_args, relu_args, data_args,
        weights_args;
    std::vector<float> bias, diff_out, masked, diff_in, grad_weight, grad_bias;
  };

  memory Wrap(const memory::desc& desc, std::vector<float>& values) {
    return memory(desc, engine_, values.data());
  }

  memory Reordered(const memory::desc& layout, size_t layer) {
    const int64_t k = kStackWidths[layer], m = kStackWidths[layer + 1];
    const memory::desc plain_desc({m, k}, DataType::f32, Tag::oi);
    memory plain(plain_desc, engine_,
                 const_cast<float*>(StackWeights()[layer].weight.data()));
    if (layout == plain_desc) return plain;
    memory reordered(layout, engine_);
    dnnl::reorder(plain, reordered).execute(stream_, plain, reordered);
    stream_.wait();
    return reordered;
  }

  dnnl::engine engine_;
  dnnl::stream stream_;
  std::vector<std::vector<float>> activations_;  // [0]: x; [i + 1]: layer i
  std::vector<Layer> layers_;
};

void BM_RawStackForward(benchmark::State& state) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  RawStack stack(n, /*backward=*/false);
  for (auto _ : state) {
    stack.Forward();
    benchmark::DoNotOptimize(stack.output());
    benchmark::ClobberMemory();
  }
  SetCounters(state, StackForwardFlops(n));
}

void BM_RawStackForwardBackward(benchmark::State& state) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  RawStack stack(n, /*backward=*/true);
  for (auto _ : state) {
    stack.ForwardBackward();
    benchmark::DoNotOptimize(stack.output());
    benchmark::ClobberMemory();
  }
  SetCounters(state, StackForwardBackwardFlops(n));
}

std::unique_ptr<reluserve::SequentialModel> MakeStack(benchmark::State& state) {
  std::vector<reluserve::SequentialLayerSpec> layers;
  for (size_t i = 0; i < kStackDepth; ++i) {
    reluserve::SequentialLayerSpec layer;
    layer.weights = StackWeights()[i];
    layer.relu = StackRelu(i);
    layer.module = std::to_string(2 * i);
    layer.weight_name = layer.module + ".weight";
    layer.bias_name = layer.module + ".bias";
    layers.push_back(std::move(layer));
  }
  reluserve::SequentialModelOptions options;
  options.intra_op_threads = static_cast<int>(state.range(1));
  auto model = reluserve::SequentialModel::Create(std::move(layers), options);
  if (!model.ok()) {
    state.SkipWithError(std::string(model.status().message()).c_str());
    return nullptr;
  }
  return std::move(*model);
}

// Every output of the model's signature for `n` rows, in buffers written to
// before timing.
struct StackBuffers {
  StackBuffers(const reluserve::Model& model, int64_t n, bool backward) {
    const reluserve::ModelSignature& signature = model.signature();
    inputs.push_back(RandomBuffer(n * kStackWidths[0], 1));
    inputs.push_back(RandomBuffer(n * kStackWidths[kStackDepth], 3));
    run.batch = n;
    run.inputs = {inputs[0].data(), backward ? inputs[1].data() : nullptr};
    for (size_t i = 0; i < signature.outputs.size(); ++i) {
      int64_t count = 1;
      for (int64_t dim : signature.outputs[i].shape) count *= dim < 0 ? n : dim;
      outputs.push_back(RandomBuffer(count, 100 + i));
      run.outputs.push_back(i == 0 || backward ? outputs.back().data()
                                               : nullptr);
    }
  }
  std::vector<std::vector<float>> inputs, outputs;
  reluserve::ModelRun run;
};

void RunStack(benchmark::State& state, bool backward) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  const std::unique_ptr<reluserve::SequentialModel> model = MakeStack(state);
  if (model == nullptr) return;
  StackBuffers buffers(*model, n, backward);
  for (auto _ : state) {
    const absl::Status status = model->Run(buffers.run);
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(buffers.outputs.front().data());
    benchmark::ClobberMemory();
  }
  SetCounters(state,
              backward ? StackForwardBackwardFlops(n) : StackForwardFlops(n));
}

void BM_SequentialForward(benchmark::State& state) { RunStack(state, false); }
void BM_SequentialForwardBackward(benchmark::State& state) {
  RunStack(state, true);
}

// The console table (one median line per benchmark when repeated), then one
// line per (pass, N, threads) comparing LinearLayer's throughput with the raw
// primitive's: the ratio of the median times, and of the fastest repetitions
// (interference from other processes only ever adds time, so on a busy
// machine the fastest repetition is the better estimate). Spread is
// (max - min) / median over the repetitions; a large one marks a disturbed
// row.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter()
      : ConsoleReporter(isatty(fileno(stdout)) ? OO_ColorTabular : OO_Tabular) {
  }

  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> shown;
    const bool repeated = std::any_of(runs.begin(), runs.end(), [](auto& r) {
      return r.run_type == Run::RT_Aggregate;
    });
    for (const Run& run : runs) {
      if (!repeated || run.aggregate_name == "median") shown.push_back(run);
      if (run.run_type != Run::RT_Iteration || run.error_occurred) continue;
      const std::string& name = run.run_name.function_name;
      const size_t slash = name.find('/');
      if (slash == std::string::npos) continue;
      const Key key{name.substr(slash + 1), run.run_name.args};
      seconds_[key][name.substr(0, slash)].push_back(
          run.real_accumulated_time / static_cast<double>(run.iterations));
    }
    ConsoleReporter::ReportRuns(shown);
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    PrintRatios("LinearLayer", "Raw", "one layer, 3072 -> 100 relu");
    PrintRatios("Sequential", "RawStack",
                "a stack, 3072 -> 256 relu -> 128 relu -> 10");
    std::fflush(stdout);
  }

 private:
  void PrintRatios(const std::string& ours_name, const std::string& raw_name,
                   const char* what) {
    std::printf(
        "\n%s / %s throughput (%s time / %s time), median and fastest of "
        "the repetitions, %s:\n",
        ours_name.c_str(), raw_name.c_str(), raw_name.c_str(),
        ours_name.c_str(), what);
    std::printf("%-16s %-13s %9s %7s %9s %7s %8s %8s\n", "pass", "args",
                "Raw us", "spread", "Ours us", "spread", "median", "fastest");
    for (const auto& [key, sides] : seconds_) {
      const auto raw = sides.find(raw_name);
      const auto ours = sides.find(ours_name);
      if (raw == sides.end() || ours == sides.end()) continue;
      const Summary r = Summarize(raw->second), o = Summarize(ours->second);
      const double median_ratio = r.median / o.median;
      const double fastest_ratio = r.fastest / o.fastest;
      std::printf(
          "%-16s %-13s %9.1f %6.0f%% %9.1f %6.0f%% %8.3f %8.3f%s\n",
          key.pass.c_str(), key.args.c_str(), r.median * 1e6, r.spread * 100,
          o.median * 1e6, o.spread * 100, median_ratio, fastest_ratio,
          std::min(median_ratio, fastest_ratio) < 0.95 ? "  < 0.95" : "");
    }
  }

  // (pass, "N:../omp:.."), ordered by pass, then threads, then N.
  struct Key {
    std::string pass, args;
    bool operator<(const Key& other) const {
      return std::make_tuple(pass, Omp(), N()) <
             std::make_tuple(other.pass, other.Omp(), other.N());
    }
    int64_t N() const { return ArgValue("N:"); }
    int64_t Omp() const { return ArgValue("omp:"); }
    int64_t ArgValue(const char* label) const {
      const size_t at = args.find(label);
      return at == std::string::npos
                 ? 0
                 : std::strtoll(args.c_str() + at + std::strlen(label), nullptr,
                                10);
    }
  };
  struct Summary {
    double median, fastest, spread;
  };

  static Summary Summarize(std::vector<double> values) {
    std::sort(values.begin(), values.end());
    const size_t middle = values.size() / 2;
    const double median = values.size() % 2 == 1
                              ? values[middle]
                              : (values[middle - 1] + values[middle]) / 2.0;
    return {median, values.front(), (values.back() - values.front()) / median};
  }

  std::map<Key, std::map<std::string, std::vector<double>>> seconds_;
};

// Raw and LinearLayer of one shape are registered side by side; the default
// flags (bench_main.h) interleave every repetition at random, so a burst of
// load from elsewhere on the machine does not land on one side of a ratio only.
void RegisterAll() {
  using Function = void (*)(benchmark::State&);
  const std::pair<const char*, Function> kBenchmarks[] = {
      {"Raw/Forward", BM_RawForward},
      {"LinearLayer/Forward", BM_LinearReluForward},
      {"Raw/ForwardBackward", BM_RawForwardBackward},
      {"LinearLayer/ForwardBackward", BM_LinearReluForwardBackward},
      {"RawStack/Forward", BM_RawStackForward},
      {"Sequential/Forward", BM_SequentialForward},
      {"RawStack/ForwardBackward", BM_RawStackForwardBackward},
      {"Sequential/ForwardBackward", BM_SequentialForwardBackward}};
  for (int threads : kOmpThreads) {
    for (int64_t n : kBatchSizes) {
      for (const auto& [name, function] : kBenchmarks) {
        benchmark::RegisterBenchmark(name, function)
            ->ArgNames({"N", "omp"})
            ->Args({n, threads})
            ->MinWarmUpTime(kWarmUpSeconds)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (!reluserve::bench::InitializeWithDefaults(argc, argv)) return 1;
  RegisterAll();
  benchmark::AddCustomContext("isa", reluserve::LinearLayer::CpuIsaName());
  const dnnl_version_t* version = dnnl_version();
  benchmark::AddCustomContext("onednn", std::to_string(version->major) + "." +
                                            std::to_string(version->minor) +
                                            "." +
                                            std::to_string(version->patch));
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
