#ifndef RELUSERVE_BENCH_STACK_BENCH_H_
#define RELUSERVE_BENCH_STACK_BENCH_H_

#include <benchmark/benchmark.h>

// A 3-layer SequentialModel (3072 -> 256 relu -> 128 relu -> 10) and the
// same stack of raw oneDNN primitives; state.range(0) is N, range(1) the
// OpenMP threads.
namespace reluserve::bench {

void BM_RawStackForward(benchmark::State& state);
void BM_RawStackForwardBackward(benchmark::State& state);
void BM_SequentialForward(benchmark::State& state);
void BM_SequentialForwardBackward(benchmark::State& state);

}  // namespace reluserve::bench

#endif  // RELUSERVE_BENCH_STACK_BENCH_H_
