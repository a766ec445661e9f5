#include "server/core/weights.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/normal_random.h"
#include "server/core/safetensors.h"

namespace reluserve {

absl::StatusOr<LinearWeights> LoadSafetensors(const std::string& path,
                                              const std::string& prefix) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  const std::string weight_name = prefix + "weight";
  const std::string bias_name = prefix + "bias";

  absl::StatusOr<const SafetensorsTensor*> w = file->Get(weight_name);
  if (!w.ok()) return w.status();
  if (absl::Status ok = file->CheckF32(**w, 2); !ok.ok()) return ok;
  const SafetensorsTensor* b = file->Find(bias_name);  // Optional.
  if (b != nullptr) {
    if (absl::Status ok = file->CheckF32(*b, 1); !ok.ok()) return ok;
    if (b->shape[0] != (*w)->shape[0]) {
      return file->Invalid(absl::StrCat(
          "shape mismatch: '", bias_name, "' has length ", b->shape[0],
          " but '", weight_name, "' has ", (*w)->shape[0], " rows"));
    }
    if (absl::Status ok = file->CheckDisjoint({*w, b}); !ok.ok()) return ok;
  }

  LinearWeights result;
  // Both fit in int64: each is at most the file's size / 4.
  result.out_features = static_cast<int64_t>((*w)->shape[0]);
  result.in_features = static_cast<int64_t>((*w)->shape[1]);
  absl::StatusOr<std::vector<float>> weight = file->ReadF32(**w);
  if (!weight.ok()) return weight.status();
  result.weight = *std::move(weight);
  if (b != nullptr) {
    absl::StatusOr<std::vector<float>> bias = file->ReadF32(*b);
    if (!bias.ok()) return bias.status();
    result.bias = *std::move(bias);
  }
  result.source = prefix.empty()
                      ? absl::StrCat("file ", path)
                      : absl::StrCat("file ", path, " (prefix '", prefix, "')");
  return result;
}

absl::Status WriteSafetensors(const std::string& path,
                              const LinearWeights& weights,
                              const std::string& prefix) {
  const int64_t m = weights.out_features;
  const int64_t k = weights.in_features;
  if (m <= 0 || k <= 0 ||
      weights.weight.size() != static_cast<uint64_t>(m) * k ||
      (!weights.bias.empty() &&
       weights.bias.size() != static_cast<uint64_t>(m))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights file ", path,
        ": refusing to write inconsistent weights: out_features=", m,
        " in_features=", k, " weight.size()=", weights.weight.size(),
        " bias.size()=", weights.bias.size()));
  }
  std::vector<SafetensorsF32Entry> tensors;
  tensors.push_back({prefix + "weight",
                     {static_cast<uint64_t>(m), static_cast<uint64_t>(k)},
                     weights.weight});
  if (!weights.bias.empty()) {
    tensors.push_back(
        {prefix + "bias", {static_cast<uint64_t>(m)}, weights.bias});
  }
  return WriteSafetensorsF32(path, tensors);
}

LinearWeights MakeDefaultWeights(int64_t in_features, int64_t out_features,
                                 uint64_t seed) {
  LinearWeights result;
  result.source = absl::StrCat("He-normal init, seed ", seed);
  if (in_features <= 0 || out_features <= 0) return result;  // Empty layer.
  result.in_features = in_features;
  result.out_features = out_features;

  const size_t count = static_cast<size_t>(in_features) * out_features;
  result.weight.resize(count);
  FillNormal(seed, std::sqrt(2.0 / static_cast<double>(in_features)),
             result.weight.data(), count);
  result.bias.assign(static_cast<size_t>(out_features), 0.01f);
  return result;
}

}  // namespace reluserve
