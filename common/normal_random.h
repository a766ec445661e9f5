#ifndef RELUSERVE_COMMON_NORMAL_RANDOM_H_
#define RELUSERVE_COMMON_NORMAL_RANDOM_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <random>

namespace reluserve {

// Fills values[0, count) with scale · N(0, 1) draws that are the same bits on
// every machine and compiler: std::mt19937_64's output is fixed by the C++
// standard (std::normal_distribution's is not), and the Box–Muller transform
// is written out here. The default weights (seed → He init) and the client's
// random tensors (--seed) both come from this one generator. Header-only so
// the client can use it without linking the compute core.
inline void FillNormal(uint64_t seed, double scale, float* values,
                       size_t count) {
  std::mt19937_64 generator(seed);
  // A uniform double in (0, 1) from the top 52 bits: (x + 0.5) · 2^-52 is
  // exact in binary64, so no rounding mode can change it, and never 0.
  auto uniform = [&generator] {
    return (static_cast<double>(generator() >> 12) + 0.5) * 0x1p-52;
  };
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (size_t i = 0; i < count; i += 2) {
    // Two independent normals per pair of uniforms.
    const double radius = std::sqrt(-2.0 * std::log(uniform()));
    const double angle = kTwoPi * uniform();
    values[i] = static_cast<float>(radius * std::cos(angle) * scale);
    if (i + 1 < count) {
      values[i + 1] = static_cast<float>(radius * std::sin(angle) * scale);
    }
  }
}

}  // namespace reluserve

#endif  // RELUSERVE_COMMON_NORMAL_RANDOM_H_
