#ifndef RELUSERVE_SERVER_CORE_PRECISION_H_
#define RELUSERVE_SERVER_CORE_PRECISION_H_

#include <cstddef>

#include "common/bfloat16.h"

namespace reluserve {

// Element type of tensors on the wire: FP32, or bfloat16 (the upper half of
// an FP32, half the bytes).
enum class Precision { kFloat32, kBFloat16 };

inline size_t ElementBytes(Precision precision) {
  return precision == Precision::kBFloat16 ? 2 : 4;
}

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_CORE_PRECISION_H_
