#ifndef RELUSERVE_BENCH_BENCH_MAIN_H_
#define RELUSERVE_BENCH_BENCH_MAIN_H_

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace reluserve::bench {

// Initializes Google Benchmark with the defaults every ReluServe benchmark
// shares, which keep a whole run near a minute and interleave repetitions
// at random (a burst of load from elsewhere on the machine then does not
// land on one side of a ratio only). Flags on the command line come later
// and win. False after an unrecognized flag (reported).
inline bool InitializeWithDefaults(int argc, char** argv) {
  static std::string defaults[] = {
      "--benchmark_min_time=0.1", "--benchmark_repetitions=5",
      "--benchmark_enable_random_interleaving=true"};
  static std::vector<char*> args;
  args = {argv[0]};
  for (std::string& flag : defaults) args.push_back(flag.data());
  args.insert(args.end(), argv + 1, argv + argc);
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  return !benchmark::ReportUnrecognizedArguments(count, args.data());
}

}  // namespace reluserve::bench

#endif  // RELUSERVE_BENCH_BENCH_MAIN_H_
