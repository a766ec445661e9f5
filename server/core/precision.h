#ifndef RELUSERVE_SERVER_CORE_PRECISION_H_
#define RELUSERVE_SERVER_CORE_PRECISION_H_

#include <cstddef>
#include <string>

#include "common/bfloat16.h"

namespace reluserve {

// Element type of tensors on the wire: FP32, or bfloat16 (the upper half of
// an FP32, half the bytes).
enum class Precision { kFloat32, kBFloat16 };

inline size_t ElementBytes(Precision precision) {
  return precision == Precision::kBFloat16 ? 2 : 4;
}

// The Open Inference Protocol's datatype names, "FP32" and "BF16".
inline const char* DatatypeName(Precision precision) {
  return precision == Precision::kBFloat16 ? "BF16" : "FP32";
}

// False for any other name.
inline bool ParseDatatype(const std::string& name, Precision* precision) {
  if (name == "FP32") {
    *precision = Precision::kFloat32;
  } else if (name == "BF16") {
    *precision = Precision::kBFloat16;
  } else {
    return false;
  }
  return true;
}

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_CORE_PRECISION_H_
