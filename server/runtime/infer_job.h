#ifndef RELUSERVE_SERVER_RUNTIME_INFER_JOB_H_
#define RELUSERVE_SERVER_RUNTIME_INFER_JOB_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "server/runtime/inference_request.h"

namespace reluserve {

using Nanoseconds = std::chrono::nanoseconds;

// Where a request's time went, in Triton's statistics phases.
struct RequestPhases {
  Nanoseconds queue{0};
  Nanoseconds compute_input{0};
  Nanoseconds compute_infer{0};
  Nanoseconds compute_output{0};
};

// One validated inference request on its way through the queue and the
// model. The request's bytes and the reply's buffers belong to the front
// end's call and outlive the job.
struct InferJob {
  ValidatedRequest validated;
  // Per signature output, where the model writes (FP32): the reply's bytes,
  // or `staging` for an output that goes out in BF16. Null: not asked for.
  std::vector<float*> outputs;
  struct Conversion {
    const float* from;  // in staging
    uint16_t* to;       // in the reply
    size_t count;
  };
  std::vector<float> staging;
  std::vector<Conversion> conversions;  // run after a successful compute

  std::chrono::system_clock::time_point deadline =
      std::chrono::system_clock::time_point::max();
  // True once nobody waits for the answer (the client cancelled); such a
  // job is answered CANCELLED instead of computed. Empty: never. Called on
  // the computing thread.
  std::function<bool()> cancelled;
  std::chrono::steady_clock::time_point arrival;
  std::chrono::steady_clock::time_point enqueued;
  RequestPhases phases;

  // Called exactly once with the outcome, on whichever thread finished the
  // job; the job is destroyed right after.
  std::function<void(InferJob& job, const absl::Status& status)> done;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_RUNTIME_INFER_JOB_H_
