#ifndef RELUSERVE_TESTS_SUPPORT_FUZZ_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_FUZZ_TESTING_H_

// What every fuzz target (tests/fuzz) shares: a failed check aborts, so
// that libFuzzer keeps the input as a reproducer, and
// RELUSERVE_FUZZ_VERBOSE=1 prints what each input came to (to see what a
// seed or a reproducer does).

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"

namespace reluserve::testing {

[[noreturn]] inline void FuzzCheckFailed(const char* what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

inline bool FuzzVerbose() {
  static const bool verbose = [] {
    const char* value = std::getenv("RELUSERVE_FUZZ_VERBOSE");
    return value != nullptr && std::string(value) == "1";
  }();
  return verbose;
}

inline void FuzzLog(const char* what, const absl::Status& status) {
  if (FuzzVerbose()) {
    std::fprintf(stderr, "%s: %s\n", what, status.ToString().c_str());
  }
}

// Fails unless `status` is `code` or `other` (a refusal of bad input).
inline void FuzzExpectRefusal(const absl::Status& status, absl::StatusCode code,
                              absl::StatusCode other = absl::StatusCode::kOk) {
  if (status.code() != code &&
      (other == absl::StatusCode::kOk || status.code() != other)) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    FuzzCheckFailed("a refusal with an unexpected code");
  }
}

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_FUZZ_TESTING_H_
