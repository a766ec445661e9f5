// reluserve-monitor-bench: what the dead-ReLU monitor adds to a forward pass.
// LinearLayer::Forward alone, Forward followed by DeadReluMonitor::Observe of
// its output, and Observe alone, side by side (K=3072, M=100, 1 OpenMP
// thread), for a healthy layer (the default He-normal weights, bias 0.01:
// every unit is seen positive within a few rows) and for a layer whose bias
// kills half the units (Observe then reads every row of those units: its
// worst case).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "server/core/linear_layer.h"
#include "server/core/weights.h"
#include "server/runtime/dead_relu_monitor.h"

namespace {

constexpr int64_t kInFeatures = 3072;
constexpr int64_t kOutFeatures = 100;

std::vector<float> NormalInputs(int64_t count) {
  std::mt19937_64 generator(7);
  std::normal_distribution<float> normal;
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) v = normal(generator);
  return values;
}

std::unique_ptr<reluserve::LinearLayer> Layer(bool half_dead) {
  reluserve::LinearWeights weights =
      reluserve::MakeDefaultWeights(kInFeatures, kOutFeatures, 42);
  if (half_dead) {
    for (int64_t unit = 0; unit < kOutFeatures; unit += 2) {
      weights.bias[unit] = -1e6f;
    }
  }
  return std::move(*reluserve::LinearLayer::Create(weights));
}

reluserve::DeadReluMonitor::Options MonitorOptions() {
  reluserve::DeadReluMonitor::Options options;
  options.warn_fraction = 1.0;  // no log lines while timing
  return options;
}

// state.range(0): N; range(1): 1 for the half-dead layer.
void Run(benchmark::State& state, bool forward, bool observe) {
  omp_set_num_threads(1);
  const int64_t n = state.range(0);
  const std::unique_ptr<reluserve::LinearLayer> layer = Layer(state.range(1));
  reluserve::DeadReluMonitor monitor(kOutFeatures, MonitorOptions(), "bench");
  const std::vector<float> x = NormalInputs(n * kInFeatures);
  std::vector<float> y(static_cast<size_t>(n * kOutFeatures));
  if (!layer->Forward(n, x.data(), y.data()).ok()) {
    state.SkipWithError("forward failed");
    return;
  }
  for (auto _ : state) {
    if (forward) (void)layer->Forward(n, x.data(), y.data());
    if (observe) monitor.Observe(y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["dead_units"] = static_cast<double>(monitor.Read().dead_units);
}

void BM_Forward(benchmark::State& state) { Run(state, true, false); }
void BM_ForwardAndObserve(benchmark::State& state) { Run(state, true, true); }
void BM_Observe(benchmark::State& state) { Run(state, false, true); }

void RegisterAll() {
  using Function = void (*)(benchmark::State&);
  const std::pair<const char*, Function> benchmarks[] = {
      {"Forward", BM_Forward},
      {"ForwardAndObserve", BM_ForwardAndObserve},
      {"Observe", BM_Observe}};
  for (int64_t half_dead : {0, 1}) {
    for (int64_t n : {1, 100}) {
      for (const auto& [name, function] : benchmarks) {
        benchmark::RegisterBenchmark(name, function)
            ->ArgNames({"N", "half_dead"})
            ->Args({n, half_dead})
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
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
