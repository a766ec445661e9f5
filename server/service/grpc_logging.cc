#include "server/service/grpc_logging.h"

#include <grpc/support/log.h>

#include <cassert>
#include <cstring>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/stubs/logging.h"
#include "spdlog/spdlog.h"

namespace reluserve {
namespace {

struct CaptureState {
  absl::Mutex mutex;
  bool capturing ABSL_GUARDED_BY(mutex) = false;
  std::vector<std::string> lines ABSL_GUARDED_BY(mutex);
  std::function<void(const std::string&)> listener_failure
      ABSL_GUARDED_BY(mutex);
};

CaptureState& State() {
  static CaptureState* state = new CaptureState();
  return *state;
}

void LogToSpdlog(gpr_log_func_args* args) {
  const char* file = std::strrchr(args->file, '/');
  std::function<void(const std::string&)> on_listener_failure;
  if (absl::StartsWith(args->message, "Failed accept4")) {
    CaptureState& state = State();
    absl::MutexLock lock(&state.mutex);
    on_listener_failure = state.listener_failure;
  }
  if (on_listener_failure) on_listener_failure(args->message);
  std::string line = absl::StrCat("grpc: ", file ? file + 1 : args->file, ":",
                                  args->line, " ", args->message);
  {
    CaptureState& state = State();
    absl::MutexLock lock(&state.mutex);
    if (state.capturing) {
      state.lines.push_back(std::move(line));
      return;
    }
  }
  spdlog::log(args->severity == GPR_LOG_SEVERITY_ERROR ? spdlog::level::warn
                                                       : spdlog::level::debug,
              "{}", line);
}

void ProtobufLogToSpdlog(google::protobuf::LogLevel level, const char* file,
                         int line, const std::string& message) {
  const char* name = std::strrchr(file, '/');
  spdlog::log(level == google::protobuf::LOGLEVEL_FATAL
                  ? spdlog::level::critical
                  : spdlog::level::debug,
              "protobuf: {}:{} {}", name ? name + 1 : file, line, message);
}

}  // namespace

void SetGrpcListenerFailureHandler(
    std::function<void(const std::string& grpc_message)> handler) {
  CaptureState& state = State();
  absl::MutexLock lock(&state.mutex);
  state.listener_failure = std::move(handler);
}

void RouteGrpcLogsToSpdlog() {
  google::protobuf::SetLogHandler(&ProtobufLogToSpdlog);
  gpr_set_log_function(&LogToSpdlog);
  // gRPC drops lines below its verbosity before they reach the function.
  gpr_set_log_verbosity(spdlog::should_log(spdlog::level::debug)
                            ? GPR_LOG_SEVERITY_DEBUG
                            : GPR_LOG_SEVERITY_ERROR);
}

GrpcLogCapture::GrpcLogCapture() {
  CaptureState& state = State();
  absl::MutexLock lock(&state.mutex);
  assert(!state.capturing);
  state.capturing = true;
}

GrpcLogCapture::~GrpcLogCapture() {
  std::vector<std::string> lines;
  {
    CaptureState& state = State();
    absl::MutexLock lock(&state.mutex);
    state.capturing = false;
    lines.swap(state.lines);
  }
  for (const std::string& line : lines) spdlog::warn("{}", line);
}

std::vector<std::string> GrpcLogCapture::Take() {
  CaptureState& state = State();
  absl::MutexLock lock(&state.mutex);
  std::vector<std::string> lines;
  lines.swap(state.lines);
  return lines;
}

}  // namespace reluserve
