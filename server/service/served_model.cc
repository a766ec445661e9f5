#include "server/service/served_model.h"

#include <algorithm>
#include <climits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/runtime/request_validation.h"

namespace reluserve {
namespace {

// Room for names, shapes, ids and parameters around the tensor bytes.
constexpr int64_t kEnvelopeBytes = 1 << 20;

int ClampToInt(int64_t bytes) {
  return static_cast<int>(std::min<int64_t>(bytes, INT_MAX));
}

// FP32 bytes of `tensors` at `batch` rows.
int64_t Bytes(const std::vector<TensorSpec>& tensors, int64_t batch) {
  int64_t bytes = 0;
  for (const TensorSpec& spec : tensors) {
    bytes += TensorBytes(spec, batch, Precision::kFloat32);
  }
  return bytes;
}

// Versions compare as numbers where both are ("10" after "9").
bool VersionBefore(const std::string& a, const std::string& b) {
  if (a.size() != b.size() && std::all_of(a.begin(), a.end(), ::isdigit) &&
      std::all_of(b.begin(), b.end(), ::isdigit)) {
    return a.size() < b.size();
  }
  return a < b;
}

}  // namespace

int MaxReceiveBytes(const ServedModelSpec& spec) {
  return ClampToInt(
      Bytes(spec.model->signature().inputs, spec.config.max_batch) +
      kEnvelopeBytes);
}

int MaxSendBytes(const ServedModelSpec& spec) {
  return ClampToInt(
      Bytes(spec.model->signature().outputs, spec.config.max_batch) +
      kEnvelopeBytes);
}

absl::Status CheckMessageLimits(const ServedModelSpec& spec) {
  const ModelSignature& signature = spec.model->signature();
  // The larger message, per row and fixed, at one row and at two.
  const int64_t fixed =
      std::max(Bytes(signature.inputs, 0), Bytes(signature.outputs, 0));
  const int64_t per_row =
      std::max(Bytes(signature.inputs, 1), Bytes(signature.outputs, 1)) - fixed;
  const int64_t room = int64_t{INT_MAX} - fixed - kEnvelopeBytes;
  const int64_t largest_batch =
      room > 0 ? (per_row > 0 ? room / per_row : INT64_MAX) : 0;
  const ModelConfig& config = spec.config;
  if (config.max_batch <= largest_batch) return absl::OkStatus();
  if (largest_batch < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model '", config.name, "' version ", config.version,
        " does not fit in gRPC's 2 GiB message limit at any batch size"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "a maximum batch of ", config.max_batch, " for model '", config.name,
      "' version ", config.version,
      " needs messages above gRPC's 2 GiB limit: the largest batch that "
      "fits is ",
      largest_batch));
}

ServedModel::ServedModel(ServedModelSpec spec,
                         const DeadReluMonitor::Options& dead_relu)
    : spec_(std::move(spec)),
      monitors_(dead_relu.window_rows > 0 && !spec_.model->relu_layers().empty()
                    ? std::make_unique<ReluMonitors>(
                          spec_.model->relu_layers(), dead_relu,
                          absl::StrCat("model ", spec_.config.name, " v",
                                       spec_.config.version))
                    : nullptr) {
  scheduler_ = std::make_unique<Scheduler>(
      spec_.scheduling, spec_.model,
      [this](int64_t rows, Nanoseconds input, Nanoseconds infer,
             Nanoseconds output) {
        statistics_.RecordExecution(rows, input, infer, output);
      },
      monitors_.get());
}

ModelMetrics ServedModel::Metrics() const {
  ModelMetrics metrics;
  metrics.name = spec_.config.name;
  metrics.version = spec_.config.version;
  metrics.totals = statistics_.Read();
  metrics.pending_requests = pending_requests_.load();
  if (monitors_ != nullptr) {
    for (const ReluMonitors::Layer& layer : monitors_->Read()) {
      metrics.relu_layers.push_back({layer.label, layer.snapshot});
    }
  }
  return metrics;
}

ServedModels::ServedModels(std::vector<ServedModelSpec> specs,
                           const DeadReluMonitor::Options& dead_relu) {
  std::sort(specs.begin(), specs.end(),
            [](const ServedModelSpec& a, const ServedModelSpec& b) {
              if (a.config.name != b.config.name) {
                return a.config.name < b.config.name;
              }
              return VersionBefore(a.config.version, b.config.version);
            });
  for (ServedModelSpec& spec : specs) {
    models_.push_back(
        std::make_unique<ServedModel>(std::move(spec), dead_relu));
  }
}

std::vector<std::string> ServedModels::VersionsOf(
    const std::string& name) const {
  std::vector<std::string> versions;
  for (const auto& model : models_) {
    if (model->config().name == name) {
      versions.push_back(model->config().version);
    }
  }
  return versions;
}

absl::StatusOr<ServedModel*> ServedModels::Find(
    const std::string& name, const std::string& version) const {
  ServedModel* highest = nullptr;
  for (const auto& model : models_) {
    if (model->config().name != name) continue;
    if (version.empty()) {
      highest = model.get();  // ascending: the last is the highest
    } else if (model->config().version == version) {
      return model.get();
    }
  }
  if (highest != nullptr) return highest;
  const std::vector<std::string> versions = VersionsOf(name);
  if (versions.empty()) {
    std::vector<std::string> names;
    for (const auto& model : models_) {
      const std::string quoted = absl::StrCat("'", model->config().name, "'");
      if (names.empty() || names.back() != quoted) names.push_back(quoted);
    }
    return absl::NotFoundError(absl::StrCat("unknown model '", name,
                                            "'; this server serves ",
                                            absl::StrJoin(names, ", ")));
  }
  return absl::NotFoundError(absl::StrCat(
      "unknown version '", version, "' of model '", name,
      "'; this server serves version", versions.size() > 1 ? "s " : " ",
      absl::StrJoin(versions, ", ")));
}

}  // namespace reluserve
