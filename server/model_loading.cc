#include "server/model_loading.h"

#include <algorithm>
#include <memory>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/sequential_model.h"
#include "server/core/state_dict.h"
#include "server/core/weights.h"
#include "server/service/model_repository.h"

namespace reluserve {
namespace {

// A stack's layers with their ReLUs placed by `layers`.
absl::StatusOr<std::vector<SequentialLayerSpec>> PlaceRelus(
    LinearStack stack, const std::string& layers) {
  absl::StatusOr<std::vector<bool>> relu_after = ParseLayerPlan(layers, stack);
  if (!relu_after.ok()) return relu_after.status();
  std::vector<SequentialLayerSpec> specs;
  for (size_t i = 0; i < stack.layers.size(); ++i) {
    NamedLinear& layer = stack.layers[i];
    SequentialLayerSpec spec;
    spec.weights = std::move(layer.weights);
    spec.relu = (*relu_after)[i];
    spec.module = layer.module;
    spec.weight_name = layer.weight_name;
    spec.bias_name = layer.bias_name;
    specs.push_back(std::move(spec));
  }
  return specs;
}

absl::StatusOr<LoadedModel> Build(std::vector<SequentialLayerSpec> layers,
                                  const std::string& source,
                                  SequentialModelOptions options,
                                  ServedModelSpec spec) {
  absl::StatusOr<std::unique_ptr<SequentialModel>> model =
      SequentialModel::Create(std::move(layers), options);
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat(source, ": ", model.status().message()));
  }
  LoadedModel loaded;
  const Scheduler::Options& scheduling = spec.scheduling;
  std::string computing = "computing inline on gRPC's threads";
  if (scheduling.compute_threads > 0) {
    computing = absl::StrCat(scheduling.compute_threads,
                             " compute thread(s), queue of ",
                             scheduling.max_queue_size, ", dynamic batching ");
    if (scheduling.max_batch_delay.count() == 0) {
      absl::StrAppend(&computing, "off");
    } else {
      absl::StrAppend(
          &computing, "up to ", scheduling.max_batch_delay.count(), " us, ",
          scheduling.preferred_batch_rows > 0 ? scheduling.preferred_batch_rows
                                              : scheduling.max_batch_rows,
          " rows");
    }
  }
  loaded.description = absl::StrCat(
      "model ", spec.config.name, " v", spec.config.version, ": ",
      (*model)->Describe(), options.backward ? "" : " (inference only)",
      " from ", source, "; max batch ", spec.config.max_batch, "; ", computing);
  spec.model = std::shared_ptr<const Model>(std::move(*model));
  loaded.spec = std::move(spec);
  return loaded;
}

absl::StatusOr<std::vector<LoadedModel>> LoadRepository(
    const ServerFlags& flags, const Server::Options& defaults) {
  absl::StatusOr<std::vector<RepositoryModel>> repository =
      ScanModelRepository(flags.model_repository);
  if (!repository.ok()) return repository.status();
  std::vector<LoadedModel> loaded;
  for (const RepositoryModel& entry : *repository) {
    const std::string& config_file =
        entry.config_path.empty() ? entry.name : entry.config_path;
    ServedModelSpec spec;
    spec.config.name = entry.name;
    spec.config.max_batch =
        entry.max_batch_size > 0 ? entry.max_batch_size : flags.max_batch;
    spec.scheduling = defaults.scheduling;
    spec.scheduling.max_batch_rows = spec.config.max_batch;
    if (entry.preferred_batch_sizes.size() > 1) {
      // The batcher gathers up to one size (or the delay); several would
      // be silently reduced to one.
      return absl::InvalidArgumentError(absl::StrCat(
          config_file, ": dynamic_batching lists ",
          entry.preferred_batch_sizes.size(),
          " preferred_batch_size values; ReluServe honours one (a batch "
          "stops gathering at that many rows): give only the largest"));
    }
    for (int64_t preferred : entry.preferred_batch_sizes) {
      if (preferred > spec.config.max_batch) {
        return absl::InvalidArgumentError(absl::StrCat(
            config_file, ": preferred_batch_size ", preferred,
            " is above the model's maximum batch of ", spec.config.max_batch));
      }
    }
    if (entry.dynamic_batching) {
      // Batches are gathered in the compute threads' queue.
      spec.scheduling.compute_threads =
          std::max(spec.scheduling.compute_threads, 1);
      spec.scheduling.max_batch_delay = std::chrono::microseconds(
          std::max<int64_t>(entry.max_queue_delay_us, 1));
      spec.scheduling.preferred_batch_rows =
          entry.preferred_batch_sizes.empty()
              ? 0
              : *std::max_element(entry.preferred_batch_sizes.begin(),
                                  entry.preferred_batch_sizes.end());
    }
    SequentialModelOptions options;
    options.intra_op_threads = flags.intra_op_threads;
    options.backward = entry.backward;
    for (const RepositoryModel::Version& version : entry.versions) {
      absl::StatusOr<LinearStack> stack = LoadLinearStack(version.weights_path);
      if (!stack.ok()) return stack.status();
      absl::StatusOr<std::vector<SequentialLayerSpec>> layers =
          PlaceRelus(*std::move(stack), entry.layers);
      if (!layers.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            config_file, ": parameter 'layers' for ", version.weights_path,
            ": ", layers.status().message()));
      }
      spec.config.version = absl::StrCat(version.number);
      absl::StatusOr<LoadedModel> model =
          Build(*std::move(layers), version.weights_path, options, spec);
      if (!model.ok()) return model.status();
      loaded.push_back(*std::move(model));
    }
  }
  return loaded;
}

}  // namespace

absl::StatusOr<std::vector<LoadedModel>> LoadModels(
    const ServerFlags& flags, const Server::Options& defaults) {
  try {
    if (!flags.model_repository.empty()) return LoadRepository(flags, defaults);
    LinearStack stack;
    if (flags.weights_file.empty()) {
      NamedLinear layer;
      layer.weight_name = "weight";
      layer.bias_name = "bias";
      layer.weights =
          MakeDefaultWeights(flags.in_features, flags.out_features, flags.seed);
      stack.source = layer.weights.source;
      stack.layers.push_back(std::move(layer));
    } else {
      absl::StatusOr<LinearStack> loaded =
          LoadLinearStack(flags.weights_file, flags.weights_prefix);
      if (!loaded.ok()) return loaded.status();
      stack = *std::move(loaded);
    }
    const std::string source = stack.source;
    absl::StatusOr<std::vector<SequentialLayerSpec>> layers =
        PlaceRelus(std::move(stack), flags.layers);
    if (!layers.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--layers for ", source, ": ", layers.status().message()));
    }
    SequentialModelOptions options;
    options.intra_op_threads = flags.intra_op_threads;
    ServedModelSpec spec;
    spec.config = defaults.model;
    spec.scheduling = defaults.scheduling;
    absl::StatusOr<LoadedModel> model =
        Build(*std::move(layers), source, options, std::move(spec));
    if (!model.ok()) return model.status();
    std::vector<LoadedModel> models;
    models.push_back(*std::move(model));
    return models;
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        "not enough memory for the weights of this model");
  }
}

}  // namespace reluserve
