#ifndef RELUSERVE_SERVER_SERVICE_INFER_JOB_H_
#define RELUSERVE_SERVER_SERVICE_INFER_JOB_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "grpc_service.pb.h"
#include "server/core/linear_relu.h"
#include "server/service/request_validation.h"
#include "server/service/statistics.h"

namespace reluserve {

// One validated inference request on its way through the queue and the core.
// The request and response messages belong to the RPC (a unary call or a
// stream) and outlive the job; outputs point into the response's bytes.
struct InferJob {
  const inference::ModelInferRequest* request = nullptr;
  inference::ModelInferResponse* response = nullptr;
  ValidatedInferRequest validated;
  // Where the core writes (FP32): the response's bytes, or `staging` for an
  // output that goes out in BF16. Null when not asked for.
  float* y = nullptr;
  GradientOutputs gradients;
  struct Conversion {
    const float* from;  // in staging
    uint16_t* to;       // in the response
    size_t count;
  };
  std::vector<float> staging;
  std::vector<Conversion> conversions;  // run after a successful compute

  std::chrono::system_clock::time_point deadline =
      std::chrono::system_clock::time_point::max();
  std::chrono::steady_clock::time_point arrival;
  std::chrono::steady_clock::time_point enqueued;
  InferenceStatistics::RequestPhases phases;

  // Called exactly once with the outcome, on whichever thread finished the
  // job; the job is destroyed right after.
  std::function<void(InferJob& job, const absl::Status& status)> done;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_INFER_JOB_H_
