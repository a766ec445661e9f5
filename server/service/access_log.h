#ifndef RELUSERVE_SERVER_SERVICE_ACCESS_LOG_H_
#define RELUSERVE_SERVER_SERVICE_ACCESS_LOG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace spdlog {
class logger;
}

namespace reluserve {

// One inference request, as the access log records it.
struct AccessRecord {
  std::string_view method;  // "ModelInfer", "ModelStreamInfer"
  std::string_view model;   // as asked for
  std::string_view version;
  std::string_view id;  // the request's id, often empty
  std::string peer;     // gRPC's, e.g. "ipv4:127.0.0.1:51234"
  int64_t rows = 0;     // 0 when refused before the batch was known
  absl::StatusCode code = absl::StatusCode::kOk;
  int64_t microseconds = 0;  // arrival to answer
};

// --access-log: one line per inference request (each message of a stream),
// written through spdlog to a file or to standard output, flushed each
// second. Text:
//   2026-12-01T23:10:00.123456+00:00 ModelInfer model=linear_relu version=1
//   id= rows=4 code=OK us=123 peer=ipv4:127.0.0.1:51234
// or, with --log-format json, one JSON object per line with the same keys.
//
// Thread safety: Write() may be called from any number of threads.
class AccessLog {
 public:
  // `path`: a file (appended to), or "-" for standard output.
  static absl::StatusOr<std::unique_ptr<AccessLog>> Open(
      const std::string& path, bool json);
  ~AccessLog();

  void Write(const AccessRecord& record);

 private:
  AccessLog(std::shared_ptr<spdlog::logger> logger, bool json);

  std::shared_ptr<spdlog::logger> logger_;
  const bool json_;
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_ACCESS_LOG_H_
