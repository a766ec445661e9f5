#ifndef RELUSERVE_SERVER_SERVICE_MODEL_CONFIG_H_
#define RELUSERVE_SERVER_SERVICE_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

namespace reluserve {

// How the server names one served model version and the batch limit it
// enforces on requests for it; what the model takes and gives is its
// signature's.
struct ModelConfig {
  std::string name = "linear_relu";
  std::string version = "1";
  int64_t max_batch = 4096;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_MODEL_CONFIG_H_
