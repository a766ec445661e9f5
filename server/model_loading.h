#ifndef RELUSERVE_SERVER_MODEL_LOADING_H_
#define RELUSERVE_SERVER_MODEL_LOADING_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/server_flags.h"
#include "server/service/server.h"

namespace reluserve {

// One model version ready to serve, and a line for the start-up log.
struct LoadedModel {
  ServedModelSpec spec;
  std::string description;
};

// The models the flags ask for, every one built on oneDNN: with
// --model-repository every version of every model in it, its config.pbtxt
// applied over `defaults` (the flags' batch limit and scheduling);
// otherwise one model from --weights (an nn.Linear or nn.Sequential state
// dict, ReLUs placed by --layers) or the default He-normal layer, named by
// `defaults`. A model that cannot be loaded fails the whole start-up with a
// message naming its file.
absl::StatusOr<std::vector<LoadedModel>> LoadModels(
    const ServerFlags& flags, const Server::Options& defaults);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_MODEL_LOADING_H_
