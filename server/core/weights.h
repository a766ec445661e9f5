#ifndef RELUSERVE_SERVER_CORE_WEIGHTS_H_
#define RELUSERVE_SERVER_CORE_WEIGHTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace reluserve {

// The parameters of one Linear layer in PyTorch `nn.Linear` layout.
// A plain value type: no synchronisation, copy or move freely.
struct LinearWeights {
  int64_t in_features = 0;    // K
  int64_t out_features = 0;   // M
  std::vector<float> weight;  // [M, K], row-major
  // [M], or empty: the layer has no bias (nn.Linear(bias=False)), which
  // computes as a zero bias and has no bias gradient.
  std::vector<float> bias;
  // Where the values came from, for the start-up log: a file path and
  // prefix, or the seed of the default initialisation.
  std::string source;
};

// Reads `<prefix>weight` (F32 [M, K]) and, if the file has it,
// `<prefix>bias` (F32 [M]) from a safetensors file; without `<prefix>bias`
// the result's bias is empty. Only a regular file is opened (a FIFO, device
// or directory is refused as "not a regular file"), every header entry is
// checked (SafetensorsFile::Open) and every length against the file's size
// before that much is read; only the two tensors' bytes are read. Every
// failure (not a regular file, unreadable file, truncated header or data,
// bad JSON, wrong dtype or rank, shapes that disagree, offsets outside the
// data section or overlapping, missing weight) is an InvalidArgument (or
// NotFound for a missing file) whose message names the file and the problem.
absl::StatusOr<LinearWeights> LoadSafetensors(const std::string& path,
                                              const std::string& prefix = "");

// Writes `weights` as a safetensors file with tensors `<prefix>weight` and,
// unless the bias is empty, `<prefix>bias`. Used by tests and tooling to make
// files the loader reads.
absl::Status WriteSafetensors(const std::string& path,
                              const LinearWeights& weights,
                              const std::string& prefix = "");

// He/Kaiming-normal weights (std = sqrt(2 / K)) and bias 0.01, drawn from
// std::mt19937_64(seed) through our own Box-Muller transform so that one
// seed gives the same bits with every compiler and standard library.
LinearWeights MakeDefaultWeights(int64_t in_features, int64_t out_features,
                                 uint64_t seed);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_CORE_WEIGHTS_H_
