#ifndef RELUSERVE_SERVER_SERVICE_MODEL_REPOSITORY_H_
#define RELUSERVE_SERVER_SERVICE_MODEL_REPOSITORY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace reluserve {

// The file every version folder holds, and the optional model configuration.
inline constexpr char kRepositoryWeightsFile[] = "model.safetensors";
inline constexpr char kRepositoryConfigFile[] = "config.pbtxt";

// The `parameters` keys config.pbtxt may set.
inline constexpr char kLayersParameter[] = "layers";
inline constexpr char kBackwardParameter[] = "backward";

// One model of a repository, as its folder and config.pbtxt describe it (the
// weights are loaded elsewhere).
struct RepositoryModel {
  std::string name;         // the folder's name
  std::string config_path;  // empty when the model has no config.pbtxt
  struct Version {
    int64_t number;
    std::string weights_path;
  };
  std::vector<Version> versions;  // ascending; the last is the default
  int64_t max_batch_size = 0;     // 0: the server's --max-batch
  // dynamic_batching given in config.pbtxt: its delay and preferred sizes.
  bool dynamic_batching = false;
  int64_t max_queue_delay_us = 0;
  std::vector<int64_t> preferred_batch_sizes;
  std::string layers;    // the `layers` parameter; empty: the default
  bool backward = true;  // the `backward` parameter
};

// Every model under `directory` (Triton's layout: <model>/[config.pbtxt] and
// <model>/<version>/model.safetensors), sorted by name, each with its
// versions in ascending order.
//
// Files directly in `directory`, and hidden entries (names starting with
// '.') at any level, are skipped. As in Triton, a folder inside a model
// folder whose name is not a decimal integer, or has a leading zero ("01"),
// is not a version and is skipped; "0" is a version.
//
// Refused with a message naming the offending path: a missing `directory`
// (NotFound); a `directory` that is not a directory, holds no model folder,
// a model folder without a version folder, a version folder without
// model.safetensors, a version number beyond int64, or a config.pbtxt that
// does not parse, sets a field ReluServe does not support or cannot honour,
// or names another model than its folder (InvalidArgument).
//
// Reads only the file system, holds no state: safe to call from any thread.
// The result is a snapshot; the weights files are not opened.
absl::StatusOr<std::vector<RepositoryModel>> ScanModelRepository(
    const std::string& directory);

// Fills `model` (its name already set: the folder's) from `text`, the
// config.pbtxt read from `path` (named in every message), refusing what
// ReluServe cannot honour, as ScanModelRepository does for each model.
absl::Status ApplyModelConfig(const std::string& path, const std::string& text,
                              RepositoryModel* model);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_MODEL_REPOSITORY_H_
