// The weights loaders over a file of arbitrary bytes: SafetensorsFile::Open
// (header length, JSON header, every entry checked against the file's size),
// LoadSafetensors (one nn.Linear) and LoadLinearStack (an nn.Linear or
// nn.Sequential state dict, with and without a prefix), then the default
// layer plan, as the server's model loading reads --weights. Beyond "no
// crash" it checks that a refusal is InvalidArgument and that what loads
// has the shapes it claims.
//
// The bytes go into one memfd, named by its /proc/self/fd path: a regular
// file, as the loaders insist, without touching the disk.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "server/core/safetensors.h"
#include "server/core/state_dict.h"
#include "server/core/weights.h"
#include "tests/support/fuzz_testing.h"

namespace reluserve {
namespace {

using testing::FuzzCheckFailed;

// The file every input is written to.
struct MemoryFile {
  int fd;
  std::string path;
};

const MemoryFile& WeightsFile() {
  static const MemoryFile* const file = [] {
    const int fd = memfd_create("safetensors_fuzzer", MFD_CLOEXEC);
    if (fd < 0) FuzzCheckFailed("memfd_create failed");
    return new MemoryFile{fd, "/proc/self/fd/" + std::to_string(fd)};
  }();
  return *file;
}

const std::string& WeightsPath() { return WeightsFile().path; }

void WriteFile(const uint8_t* data, size_t size) {
  const int fd = WeightsFile().fd;
  if (ftruncate(fd, 0) != 0) FuzzCheckFailed("ftruncate failed");
  size_t written = 0;
  while (written < size) {
    const ssize_t n =
        pwrite(fd, data + written, size - written, static_cast<off_t>(written));
    if (n <= 0) FuzzCheckFailed("pwrite failed");
    written += static_cast<size_t>(n);
  }
}

void CheckRefusal(const absl::Status& status) {
  testing::FuzzExpectRefusal(status, absl::StatusCode::kInvalidArgument);
}

void CheckWeights(const LinearWeights& weights) {
  if (weights.in_features <= 0 || weights.out_features <= 0 ||
      weights.weight.size() !=
          static_cast<size_t>(weights.in_features * weights.out_features) ||
      (!weights.bias.empty() &&
       weights.bias.size() != static_cast<size_t>(weights.out_features))) {
    FuzzCheckFailed("loaded weights whose sizes disagree");
  }
}

void LoadStack(const std::string& prefix) {
  absl::StatusOr<LinearStack> stack = LoadLinearStack(WeightsPath(), prefix);
  testing::FuzzLog(prefix.empty() ? "stack" : "stack under 'net.'",
                   stack.status());
  if (!stack.ok()) return CheckRefusal(stack.status());
  if (stack->layers.empty()) FuzzCheckFailed("a stack without layers");
  for (size_t i = 0; i < stack->layers.size(); ++i) {
    const LinearWeights& weights = stack->layers[i].weights;
    CheckWeights(weights);
    if (i > 0 &&
        weights.in_features != stack->layers[i - 1].weights.out_features) {
      FuzzCheckFailed("loaded layers that do not chain");
    }
  }
  absl::StatusOr<std::vector<bool>> relus = ParseLayerPlan("", *stack);
  if (!relus.ok() || relus->size() != stack->layers.size()) {
    FuzzCheckFailed("the default layer plan does not fit a loaded stack");
  }
}

}  // namespace
}  // namespace reluserve

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reluserve;
  WriteFile(data, size);
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(WeightsPath());
  if (!file.ok()) CheckRefusal(file.status());
  absl::StatusOr<LinearWeights> single = LoadSafetensors(WeightsPath());
  if (single.ok()) {
    CheckWeights(*single);
  } else {
    CheckRefusal(single.status());
  }
  LoadStack("");
  LoadStack("net.");
  return 0;
}
