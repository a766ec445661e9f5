// The stack half of reluserve-core-bench: a 3-layer SequentialModel against
// the same stack of raw oneDNN primitives, forward and forward+backward.
#include "bench/stack_bench.h"

#include <omp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bench/bench_util.h"
#include "dnnl.hpp"
#include "server/core/sequential_model.h"
#include "server/core/weights.h"

namespace reluserve::bench {
namespace {

using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;

constexpr uint64_t kWeightSeed = 42;

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

void RawStackForward(benchmark::State& state) {
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

void RawStackForwardBackward(benchmark::State& state) {
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

void SequentialForward(benchmark::State& state) { RunStack(state, false); }
void SequentialForwardBackward(benchmark::State& state) {
  RunStack(state, true);
}

}  // namespace

void BM_RawStackForward(benchmark::State& state) { RawStackForward(state); }
void BM_RawStackForwardBackward(benchmark::State& state) {
  RawStackForwardBackward(state);
}
void BM_SequentialForward(benchmark::State& state) { SequentialForward(state); }
void BM_SequentialForwardBackward(benchmark::State& state) {
  SequentialForwardBackward(state);
}

}  // namespace reluserve::bench
