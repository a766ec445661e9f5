#ifndef RELUSERVE_SERVER_SERVICE_MODEL_CONFIG_H_
#define RELUSERVE_SERVER_SERVICE_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

namespace reluserve {

// What the service tells clients about the one model it serves, and the
// limits it enforces on requests for it.
struct ModelConfig {
  std::string name = "linear_relu";
  std::string version = "1";
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // M
  int64_t max_batch = 4096;
};

// Tensor names of the contract (docs/api.md).
inline constexpr char kInputX[] = "x";
inline constexpr char kInputGradY[] = "grad_y";
inline constexpr char kOutputY[] = "y";
inline constexpr char kOutputGradX[] = "grad_x";
inline constexpr char kOutputGradWeight[] = "grad_weight";
inline constexpr char kOutputGradBias[] = "grad_bias";
inline constexpr char kFp32[] = "FP32";
inline constexpr char kBf16[] = "BF16";
// Output parameter choosing an output's datatype ("FP32" or "BF16").
inline constexpr char kDatatypeParameter[] = "datatype";

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_MODEL_CONFIG_H_
