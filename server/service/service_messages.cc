#include "server/service/service_messages.h"

#ifndef RELUSERVE_VERSION
#define RELUSERVE_VERSION "unknown"
#endif

namespace reluserve {

void FillServerMetadata(inference::ServerMetadataResponse* response) {
  response->set_name("reluserve");
  response->set_version(RELUSERVE_VERSION);
  response->add_extensions("statistics");
  response->add_extensions("model_configuration");
  response->add_extensions("model_repository");
  response->add_extensions("binary_tensor_data");  // the REST front end's
}

absl::Status FillModelStatistics(const ServedModels& models,
                                 const std::string& name,
                                 const std::string& version,
                                 inference::ModelStatisticsResponse* response) {
  const auto add = [response](const ServedModel& model) {
    inference::ModelStatistics& statistics = *response->add_model_stats();
    statistics.set_name(model.config().name);
    statistics.set_version(model.config().version);
    model.statistics().Fill(statistics);
  };
  if (name.empty()) {
    // Every model, every version (as Triton).
    for (const auto& model : models.all()) add(*model);
  } else if (version.empty()) {
    if (absl::StatusOr<ServedModel*> found = models.Find(name, "");
        !found.ok()) {
      return found.status();
    }
    for (const auto& model : models.all()) {
      if (model->config().name == name) add(*model);
    }
  } else {
    absl::StatusOr<ServedModel*> model = models.Find(name, version);
    if (!model.ok()) return model.status();
    add(**model);
  }
  return absl::OkStatus();
}

void FillRepositoryIndex(const ServedModels& models, bool ready,
                         bool ready_only,
                         inference::RepositoryIndexResponse* response) {
  // Every model is loaded at start-up or the server does not start: each
  // is READY, until a drain or a failed listener makes none ready.
  if (ready_only && !ready) return;
  for (const auto& model : models.all()) {
    auto* entry = response->add_models();
    entry->set_name(model->config().name);
    entry->set_version(model->config().version);
    entry->set_state(ready ? "READY" : "UNAVAILABLE");
    if (!ready) entry->set_reason("the server is not ready (draining)");
  }
}

}  // namespace reluserve
