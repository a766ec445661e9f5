#include "server/service/model_repository.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "model_config.pb.h"
#include "server/service/model_signature.h"

namespace reluserve {
namespace {

namespace fs = std::filesystem;

// Gathers the text-format parser's errors as "file:line:column: message".
class ConfigErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit ConfigErrorCollector(std::string path) : path_(std::move(path)) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    std::string error = line < 0 ? absl::StrCat(path_, ": ", message)
                                 : absl::StrCat(path_, ":", line + 1, ":",
                                                column + 1, ": ", message);
    // The parser refuses fields that our subset of Triton's ModelConfig
    // leaves out (instance_group, version_policy, ...): say why.
    if (message.find("has no field named") != std::string::npos) {
      absl::StrAppend(&error,
                      " ReluServe does not support this field of Triton's "
                      "ModelConfig; remove it.");
    }
    errors_.push_back(std::move(error));
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  const std::string path_;
  std::vector<std::string> errors_;
};

bool IsHidden(const fs::path& path) {
  const std::string name = path.filename().string();
  return !name.empty() && name.front() == '.';
}

// The entries of `directory`, sorted by name so that messages do not depend
// on the file system's order.
absl::StatusOr<std::vector<fs::directory_entry>> ListDirectory(
    const fs::path& directory) {
  std::error_code error;
  fs::directory_iterator it(directory, error);
  if (error) {
    return absl::InvalidArgumentError(absl::StrCat(
        directory.string(), ": cannot list the folder: ", error.message()));
  }
  std::vector<fs::directory_entry> entries;
  for (; it != fs::directory_iterator(); it.increment(error)) {
    if (error) break;
    entries.push_back(*it);
  }
  if (error) {
    return absl::InvalidArgumentError(absl::StrCat(
        directory.string(), ": cannot list the folder: ", error.message()));
  }
  std::sort(entries.begin(), entries.end(),
            [](const fs::directory_entry& a, const fs::directory_entry& b) {
              return a.path().filename().string() <
                     b.path().filename().string();
            });
  return entries;
}

bool IsDirectory(const fs::directory_entry& entry) {
  std::error_code error;
  return entry.is_directory(error);  // follows symbolic links
}

// The version a folder named `name` stands for, or nullopt when it is not a
// version folder. Triton's rule: only decimal integers without a leading
// zero ("0" itself is one); it ignores every other folder.
absl::StatusOr<std::optional<int64_t>> VersionNumber(const fs::path& folder) {
  const std::string name = folder.filename().string();
  if (name.empty() ||
      !std::all_of(name.begin(), name.end(),
                   [](char c) { return c >= '0' && c <= '9'; }) ||
      (name.size() > 1 && name.front() == '0')) {
    return std::nullopt;
  }
  int64_t number = 0;
  if (!absl::SimpleAtoi(name, &number)) {
    return absl::InvalidArgumentError(absl::StrCat(
        folder.string(), ": version number ", name, " does not fit in int64"));
  }
  return number;
}

absl::StatusOr<std::string> ReadFile(const fs::path& path) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (!fs::is_regular_file(status)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  std::string text;
  if (in) {
    text.assign(std::istreambuf_iterator<char>(in),
                std::istreambuf_iterator<char>());
  }
  if (!in.is_open() || in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": cannot read the file"));
  }
  return text;
}

}  // namespace

absl::Status ApplyModelConfig(const std::string& path, const std::string& text,
                              RepositoryModel* model) {
  inference::ModelConfig config;
  ConfigErrorCollector errors(path);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &config)) {
    if (errors.errors().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a ModelConfig in protobuf text format"));
    }
    return absl::InvalidArgumentError(absl::StrJoin(errors.errors(), "; "));
  }

  if (!config.name().empty() && config.name() != model->name) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": name '", config.name(), "' differs from the model folder's '",
        model->name, "'; a model is named by its folder"));
  }
  if (!config.platform().empty() && config.platform() != kPlatform) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": platform '", config.platform(),
                     "' is not supported; ReluServe serves only '", kPlatform,
                     "' (or leave platform out)"));
  }
  if (!config.backend().empty() && config.backend() != kBackend) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": backend '", config.backend(),
                     "' is not supported; ReluServe is backend '", kBackend,
                     "' (or leave backend out)"));
  }
  if (config.input_size() > 0 || config.output_size() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": sets ", config.input_size() > 0 ? "input" : "output",
        "; ReluServe derives inputs and outputs from the weights; remove "
        "them"));
  }
  if (config.max_batch_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": max_batch_size ", config.max_batch_size(),
                     " is negative; give a positive batch limit, or 0 (or "
                     "nothing) for the server's --max-batch"));
  }
  model->max_batch_size = config.max_batch_size();

  if (config.has_dynamic_batching()) {
    const inference::ModelDynamicBatching& batching = config.dynamic_batching();
    if (batching.max_queue_delay_microseconds() >
        static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": dynamic_batching.max_queue_delay_microseconds ",
          batching.max_queue_delay_microseconds(), " does not fit in int64"));
    }
    for (const int32_t size : batching.preferred_batch_size()) {
      if (size <= 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": dynamic_batching.preferred_batch_size ", size,
                         " is not positive"));
      }
      if (model->max_batch_size > 0 && size > model->max_batch_size) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": dynamic_batching.preferred_batch_size ", size,
                         " is above max_batch_size ", model->max_batch_size));
      }
    }
    model->dynamic_batching = true;
    model->max_queue_delay_us =
        static_cast<int64_t>(batching.max_queue_delay_microseconds());
    model->preferred_batch_sizes.assign(batching.preferred_batch_size().begin(),
                                        batching.preferred_batch_size().end());
  }

  // Sorted, so that the first unknown key reported does not depend on the
  // map's order.
  std::vector<std::pair<std::string, std::string>> parameters;
  for (const auto& [key, value] : config.parameters()) {
    parameters.emplace_back(key, value.string_value());
  }
  std::sort(parameters.begin(), parameters.end());
  for (const auto& [key, value] : parameters) {
    if (key == kLayersParameter) {
      model->layers = value;
    } else if (key == kBackwardParameter) {
      if (value != "true" && value != "false") {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": parameter '", kBackwardParameter, "' is '",
                         value, "'; expected \"true\" or \"false\""));
      }
      model->backward = value == "true";
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": parameters has unknown key '", key,
          "'; known keys: ", kBackwardParameter, ", ", kLayersParameter));
    }
  }
  return absl::OkStatus();
}

namespace {

// The model in `folder`: its versions, then its config.pbtxt if any.
absl::StatusOr<RepositoryModel> ScanModel(const fs::path& folder) {
  RepositoryModel model;
  model.name = folder.filename().string();
  // The name goes into requests, metric labels and log lines: the same
  // characters --model-name allows.
  if (model.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
      std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        folder.string(),
        ": a model folder's name is the model's name and may hold only "
        "letters, digits, '_', '.' and '-'; rename the folder"));
  }

  absl::StatusOr<std::vector<fs::directory_entry>> entries =
      ListDirectory(folder);
  if (!entries.ok()) return entries.status();
  std::vector<std::string> skipped;  // folders that are not versions
  for (const fs::directory_entry& entry : *entries) {
    if (IsHidden(entry.path()) || !IsDirectory(entry)) continue;
    absl::StatusOr<std::optional<int64_t>> number = VersionNumber(entry.path());
    if (!number.ok()) return number.status();
    if (!number->has_value()) {
      skipped.push_back(entry.path().filename().string());
      continue;
    }
    const fs::path weights = entry.path() / kRepositoryWeightsFile;
    std::error_code error;
    const fs::file_status status = fs::status(weights, error);
    if (!fs::exists(status)) {
      return absl::InvalidArgumentError(absl::StrCat(
          weights.string(), ": missing; every version folder of ",
          "a model holds its weights in ", kRepositoryWeightsFile));
    }
    if (!fs::is_regular_file(status)) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights.string(), ": not a regular file"));
    }
    model.versions.push_back({**number, weights.string()});
  }
  if (model.versions.empty()) {
    std::string message =
        absl::StrCat(folder.string(),
                     ": no version folder; a model needs at least one "
                     "folder named by its version number, e.g. ",
                     (folder / "1" / kRepositoryWeightsFile).string());
    if (!skipped.empty()) {
      absl::StrAppend(&message,
                      " (folders skipped because their names are "
                      "not version numbers without a leading zero: ",
                      absl::StrJoin(skipped, ", "), ")");
    }
    return absl::InvalidArgumentError(message);
  }
  std::sort(
      model.versions.begin(), model.versions.end(),
      [](const RepositoryModel::Version& a, const RepositoryModel::Version& b) {
        return a.number < b.number;
      });

  const fs::path config = folder / kRepositoryConfigFile;
  std::error_code error;
  const fs::file_status status = fs::symlink_status(config, error);
  if (fs::exists(status)) {
    model.config_path = config.string();
    absl::StatusOr<std::string> text = ReadFile(model.config_path);
    if (!text.ok()) return text.status();
    absl::Status applied = ApplyModelConfig(model.config_path, *text, &model);
    if (!applied.ok()) return applied;
  }
  return model;
}

}  // namespace

absl::StatusOr<std::vector<RepositoryModel>> ScanModelRepository(
    const std::string& directory) {
  const fs::path root(directory);
  std::error_code error;
  const fs::file_status status = fs::status(root, error);
  if (status.type() == fs::file_type::not_found) {
    return absl::NotFoundError(
        absl::StrCat("model repository '", directory, "' does not exist"));
  }
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("model repository '", directory, "': ", error.message()));
  }
  if (!fs::is_directory(status)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model repository '", directory, "' is not a directory"));
  }

  absl::StatusOr<std::vector<fs::directory_entry>> entries =
      ListDirectory(root);
  if (!entries.ok()) return entries.status();
  std::vector<RepositoryModel> models;
  for (const fs::directory_entry& entry : *entries) {
    if (IsHidden(entry.path()) || !IsDirectory(entry)) continue;
    absl::StatusOr<RepositoryModel> model = ScanModel(entry.path());
    if (!model.ok()) return model.status();
    models.push_back(*std::move(model));
  }
  if (models.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model repository '", directory, "' holds no model folder; expected ",
        (root / "<model>" / "<version>" / kRepositoryWeightsFile).string()));
  }
  // ListDirectory sorted the folders by name already.
  return models;
}

}  // namespace reluserve
