// reluserve-core-bench: reluserve::LinearLayer against the raw oneDNN
// primitives it wraps, and a SequentialModel (3 layers) against the same stack
// of raw primitives, forward and forward+backward, for the batch sizes the
// server sees, on 1 and 2 OpenMP threads. After the usual table it prints the
// ours / raw throughput ratio of every pair.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
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
#include "bench/bench_util.h"
#include "bench/ratio_reporter.h"
#include "bench/stack_bench.h"
#include "dnnl.hpp"
#include "server/core/linear_layer.h"
#include "server/core/weights.h"

namespace {

using reluserve::bench::BM_RawStackForward;
using reluserve::bench::BM_RawStackForwardBackward;
using reluserve::bench::BM_SequentialForward;
using reluserve::bench::BM_SequentialForwardBackward;
using reluserve::bench::RandomBuffer;
using reluserve::bench::SetCounters;

using dnnl::memory;
using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;

constexpr int64_t kInFeatures = 3072;  // K
constexpr int64_t kOutFeatures = 100;  // M
constexpr uint64_t kWeightSeed = 42;
constexpr int64_t kBatchSizes[] = {1, 32, 100, 256, 1024};
constexpr int kOmpThreads[] = {1, 2};
constexpr double kWarmUpSeconds = 0.02;
// Traffic between the calls of the in-server variants: none, and about what
// one N=100 forward+backward request and reply put through a core (x in,
// grad_x and grad_weight out: 3.6 MB, more than this CPU's 2 MiB of L2).
constexpr int64_t kEvictKib[] = {0, 4096};

// Forward: the inner product's multiply-adds, 2·N·K·M.
double ForwardFlops(int64_t n) {
  return 2.0 * static_cast<double>(n) * kInFeatures * kOutFeatures;
}

// Forward+backward: three N·K·M products (forward, grad_x, grad_weight) plus
// the N·M terms: bias add, ReLU, ReLU backward and the grad_bias sum.
double ForwardBackwardFlops(int64_t n) {
  return 3.0 * ForwardFlops(n) + 4.0 * static_cast<double>(n) * kOutFeatures;
}

const reluserve::LinearWeights& Weights() {
  static const reluserve::LinearWeights weights =
      reluserve::MakeDefaultWeights(kInFeatures, kOutFeatures, kWeightSeed);
  return weights;
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
// owned) scratchpad, and every memory object made once. The variants below
// (RawKind) force plain [M, K] weights, or run on bf16 x and weights.
struct RawForwardPass {
  enum Kind : int64_t { kAny, kPlainWeights, kBf16, kBf16FromFp32 };

  RawForwardPass(int64_t n, Kind kind)
      : x(RandomBuffer(n * kInFeatures, 1)),
        y(RandomBuffer(n * kOutFeatures, 2)),
        bias(Weights().bias),
        convert(kind == kBf16FromFp32) {
    const DataType type =
        kind == kBf16 || kind == kBf16FromFp32 ? DataType::bf16 : DataType::f32;
    const memory::desc x_desc({n, kInFeatures}, type, Tag::nc);
    const memory::desc weights_desc({kOutFeatures, kInFeatures}, type,
                                    kind == kPlainWeights ? Tag::oi : Tag::any);
    const memory::desc bias_desc({kOutFeatures}, DataType::f32, Tag::x);
    const memory::desc y_desc({n, kOutFeatures}, DataType::f32, Tag::nc);
    dnnl::post_ops relu;
    relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(relu);
    const dnnl::inner_product_forward::primitive_desc pd(
        dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                          x_desc, weights_desc, bias_desc,
                                          y_desc),
        attr, engine);
    inner_product = dnnl::inner_product_forward(pd);
    x_fp32 =
        memory({{n, kInFeatures}, DataType::f32, Tag::nc}, engine, x.data());
    memory src = x_fp32;
    if (type == DataType::bf16) {
      src = memory(x_desc, engine);
      to_bf16 = dnnl::reorder(x_fp32, src);
      to_bf16.execute(stream, x_fp32, src);
    }
    weights = ReorderedWeights(pd.weights_desc(), engine, stream);
    args = {{DNNL_ARG_SRC, src},
            {DNNL_ARG_WEIGHTS, weights},
            {DNNL_ARG_BIAS, memory(bias_desc, engine, bias.data())},
            {DNNL_ARG_DST, memory(y_desc, engine, y.data())}};
  }

  void Run() {
    if (convert) to_bf16.execute(stream, x_fp32, args.at(DNNL_ARG_SRC));
    inner_product.execute(stream, args);
    stream.wait();
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }

  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::vector<float> x, y, bias;
  const bool convert;  // the request's FP32 x to bf16 inside every call
  memory x_fp32, weights;
  dnnl::reorder to_bf16;
  dnnl::inner_product_forward inner_product;
  std::unordered_map<int, memory> args;
};

void BM_RawForward(benchmark::State& state) {
  omp_set_num_threads(static_cast<int>(state.range(1)));
  RawForwardPass pass(state.range(0), RawForwardPass::kAny);
  for (auto _ : state) pass.Run();
  SetCounters(state, ForwardFlops(state.range(0)));
}

// state.range(2), kind: 0 any, 1 plain weights, 2 bf16, 3 bf16 from FP32.
void BM_RawKindForward(benchmark::State& state) {
  omp_set_num_threads(static_cast<int>(state.range(1)));
  RawForwardPass pass(state.range(0),
                      static_cast<RawForwardPass::Kind>(state.range(2)));
  for (auto _ : state) pass.Run();
  SetCounters(state, ForwardFlops(state.range(0)));
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

// In the server the same call measured 19-24% slower (issue 10): between
// two requests its network path streams the request and the reply through
// the core's caches (socket buffers, the messages' bytes). These variants
// time only the call, as ModelStatistics' compute_infer does, and before
// each call copy a fresh request into x (hot, as received) and copy
// `evict_kib` KiB more through memory. `cold` flushes the weights from every
// cache instead; `prefetch` issues prefetcht0 over them inside the timed
// call (a remedy: it can only pay when the kernel waits on its loads).
class CacheTraffic {
 public:
  explicit CacheTraffic(int64_t kib)
      : from_(RandomBuffer(kib * 256, 8)), to_(from_.size()) {}
  void Run() {
    if (from_.empty()) return;
    std::memcpy(to_.data(), from_.data(), from_.size() * sizeof(float));
    benchmark::DoNotOptimize(to_.data());
    benchmark::ClobberMemory();
  }

 private:
  std::vector<float> from_, to_;
};

void ForEachLine(const memory& m, void (*op)(const void*)) {
  const char* data = static_cast<const char*>(m.get_data_handle());
  const size_t bytes = m.get_desc().get_size();
  for (size_t i = 0; i < bytes; i += 64) op(data + i);
}

template <typename Call>
void TimeOnly(benchmark::State& state, Call&& call) {
  const auto start = std::chrono::steady_clock::now();
  call();
  state.SetIterationTime(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count());
}

// range: N, omp, evict_kib, cold, prefetch.
void BM_RawTrafficForward(benchmark::State& state) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  RawForwardPass pass(n, RawForwardPass::kAny);
  CacheTraffic traffic(state.range(2));
  const std::vector<float> wire = RandomBuffer(n * kInFeatures, 9);
  for (auto _ : state) {
    std::memcpy(pass.x.data(), wire.data(), wire.size() * sizeof(float));
    traffic.Run();
    if (state.range(3) != 0) {
      ForEachLine(pass.weights, [](const void* p) { _mm_clflush(p); });
      _mm_mfence();
    }
    TimeOnly(state, [&] {
      if (state.range(4) != 0) {
        ForEachLine(pass.weights, [](const void* p) {
          _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T0);
        });
      }
      pass.Run();
    });
  }
  SetCounters(state, ForwardFlops(n));
}

// range: N, omp, evict_kib, backward (0: Forward, 1: ForwardBackward).
void BM_LinearLayerTraffic(benchmark::State& state) {
  const int64_t n = state.range(0);
  omp_set_num_threads(static_cast<int>(state.range(1)));
  const std::unique_ptr<reluserve::LinearLayer> layer = MakeLayer(state);
  if (layer == nullptr) return;
  CacheTraffic traffic(state.range(2));
  const bool backward = state.range(3) != 0;
  const std::vector<float> wire = RandomBuffer(n * kInFeatures, 9);
  std::vector<float> x(wire.size());
  std::vector<float> y = RandomBuffer(n * kOutFeatures, 2);
  std::vector<float> grad_y = RandomBuffer(n * kOutFeatures, 3);
  std::vector<float> grad_x = RandomBuffer(n * kInFeatures, 5);
  std::vector<float> grad_weight = RandomBuffer(kOutFeatures * kInFeatures, 6);
  std::vector<float> grad_bias = RandomBuffer(kOutFeatures, 7);
  const reluserve::GradientOutputs gradients{grad_x.data(), grad_weight.data(),
                                             grad_bias.data()};
  for (auto _ : state) {
    std::memcpy(x.data(), wire.data(), wire.size() * sizeof(float));
    traffic.Run();
    absl::Status status;
    TimeOnly(state, [&] {
      status = backward ? layer->ForwardBackward(n, x.data(), grad_y.data(),
                                                 y.data(), gradients)
                        : layer->Forward(n, x.data(), y.data());
    });
    if (!status.ok()) {
      state.SkipWithError(std::string(status.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(grad_weight.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, backward ? ForwardBackwardFlops(n) : ForwardFlops(n));
}

benchmark::internal::Benchmark* Register(const char* name,
                                         void (*function)(benchmark::State&)) {
  return benchmark::RegisterBenchmark(name, function)
      ->MinWarmUpTime(kWarmUpSeconds)
      ->Unit(benchmark::kMicrosecond);
}

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
        Register(name, function)
            ->ArgNames({"N", "omp"})
            ->Args({n, threads})
            ->UseRealTime();
      }
    }
  }
  // Issue 10's variants, on the server's default of one thread.
  for (int64_t n : {1, 100}) {
    for (int64_t kind = RawForwardPass::kAny;
         kind <= RawForwardPass::kBf16FromFp32; ++kind) {
      Register("RawKind/Forward", BM_RawKindForward)
          ->ArgNames({"N", "omp", "kind"})
          ->Args({n, 1, kind})
          ->UseRealTime();
    }
    for (int64_t evict_kib : kEvictKib) {
      for (int64_t backward : {0, 1}) {
        Register("LinearLayerTraffic/Pass", BM_LinearLayerTraffic)
            ->ArgNames({"N", "omp", "evict_kib", "backward"})
            ->Args({n, 1, evict_kib, backward})
            ->UseManualTime();
      }
      for (int64_t prefetch : {0, 1}) {
        Register("RawTraffic/Forward", BM_RawTrafficForward)
            ->ArgNames({"N", "omp", "evict_kib", "cold", "prefetch"})
            ->Args({n, 1, evict_kib, 0, prefetch})
            ->UseManualTime();
      }
    }
    for (int64_t prefetch : {0, 1}) {
      Register("RawTraffic/Forward", BM_RawTrafficForward)
          ->ArgNames({"N", "omp", "evict_kib", "cold", "prefetch"})
          ->Args({n, 1, 0, 1, prefetch})
          ->UseManualTime();
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
  reluserve::bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
