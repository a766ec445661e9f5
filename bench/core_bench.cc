// reluserve-core-bench: reluserve::LinearLayer against the raw oneDNN
// primitives it wraps, forward and forward+backward, for the batch sizes the
// server sees, on 1 and 2 OpenMP threads. After the usual table it prints the
// LinearLayer / Raw throughput ratio of every pair.
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
    std::printf(
        "\nLinearRelu / Raw throughput (Raw time / LinearLayer time), median "
        "and fastest of the repetitions:\n");
    std::printf("%-16s %-13s %9s %7s %9s %7s %8s %8s\n", "pass", "args",
                "Raw us", "spread", "Lin us", "spread", "median", "fastest");
    for (const auto& [key, sides] : seconds_) {
      const auto raw = sides.find("Raw");
      const auto ours = sides.find("LinearLayer");
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
    std::fflush(stdout);
  }

 private:
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
      {"LinearLayer/ForwardBackward", BM_LinearReluForwardBackward}};
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
