#ifndef RELUSERVE_SERVER_SERVICE_BEARER_TOKENS_H_
#define RELUSERVE_SERVER_SERVICE_BEARER_TOKENS_H_

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace reluserve {

// The tokens of --auth-token-file, against which both front ends check the
// `authorization: Bearer <token>` of a call. The file holds one token per
// line; blank lines and lines starting with '#' are skipped. Only SHA-256
// digests are kept, and a token is compared with every one of them in
// constant time, so neither the time of a check nor a core dump gives a
// token away.
//
// Thread safety: Check() may run on any threads at once, also while
// Reload() (one thread at a time) replaces the tokens.
class BearerTokens {
 public:
  // Reads `path`; fails, naming the file, when it cannot be read, holds no
  // token or a line that is not one.
  static absl::StatusOr<std::shared_ptr<BearerTokens>> Load(std::string path);

  // Re-reads the file (SIGHUP). On failure the tokens stay as they were and
  // the error says why.
  absl::Status Reload();

  // OK when `authorization` (the header's value) is "Bearer <token>", the
  // scheme in any case, with one of the tokens; Unauthenticated saying what
  // is wrong otherwise.
  absl::Status Check(absl::string_view authorization) const;

  const std::string& path() const { return path_; }
  size_t size() const;

 private:
  using Digest = std::array<unsigned char, 32>;

  explicit BearerTokens(std::string path) : path_(std::move(path)) {}
  static absl::StatusOr<std::vector<Digest>> Read(const std::string& path);

  const std::string path_;
  mutable absl::Mutex mutex_;
  std::vector<Digest> digests_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_BEARER_TOKENS_H_
