#ifndef RELUSERVE_BENCH_RATIO_REPORTER_H_
#define RELUSERVE_BENCH_RATIO_REPORTER_H_

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace reluserve::bench {

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

}  // namespace reluserve::bench

#endif  // RELUSERVE_BENCH_RATIO_REPORTER_H_
