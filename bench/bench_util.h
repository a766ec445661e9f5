#ifndef RELUSERVE_BENCH_BENCH_UTIL_H_
#define RELUSERVE_BENCH_BENCH_UTIL_H_

#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

namespace reluserve::bench {

// Non-zero values of either sign (about half of y stays positive through the
// ReLU) written to every page before timing: untouched zero pages halved
// oneDNN's throughput in an earlier test.
inline std::vector<float> RandomBuffer(int64_t count, uint64_t seed) {
  std::mt19937_64 generator(seed);
  std::uniform_real_distribution<float> magnitude(0.05f, 1.0f);
  std::bernoulli_distribution negative(0.5);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) {
    v = negative(generator) ? -magnitude(generator) : magnitude(generator);
  }
  return values;
}

inline void SetCounters(benchmark::State& state, double flops_per_iteration) {
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops_per_iteration * iterations / 1e9, benchmark::Counter::kIsRate);
  state.counters["rows/s"] =
      benchmark::Counter(static_cast<double>(state.range(0)) * iterations,
                         benchmark::Counter::kIsRate);
}

}  // namespace reluserve::bench

#endif  // RELUSERVE_BENCH_BENCH_UTIL_H_
