#ifndef RELUSERVE_SERVER_SERVICE_GRPC_LOGGING_H_
#define RELUSERVE_SERVER_SERVICE_GRPC_LOGGING_H_

#include <functional>
#include <string>
#include <vector>

namespace reluserve {

// Sends gRPC's own log lines to spdlog ("grpc: file:line message"), at the
// level spdlog is set to: gRPC's errors as warnings, its info and debug lines
// as debug. Protobuf's go there too ("protobuf: file:line message"), as
// debug but for fatal ones: in the server protobuf only complains about the
// messages it parses (a string field that is not UTF-8: one line per such
// request, which the client hears about as INVALID_ARGUMENT), and would
// otherwise write them to stderr past --log-format and --log-level. Call
// once, before the first gRPC object is made.
void RouteGrpcLogsToSpdlog();

// Calls `handler` (on a gRPC thread) when gRPC reports that a listener
// stopped accepting connections ("Failed accept4", e.g. at the open-file
// limit): gRPC 1.51 does not resume accepting on that port. Replaces any
// handler set before; an empty function removes it.
void SetGrpcListenerFailureHandler(
    std::function<void(const std::string& grpc_message)> handler);

// While one exists, gRPC's log lines are held here instead of logged, so that
// a caller can replace a failure's raw dump with a message that says what to
// do. Whatever was captured is logged when the capture ends unless the
// caller took it with Take().
//
// Thread safety: one capture at a time (a second one is a programming error
// caught by an assertion); gRPC's threads may log into it concurrently.
class GrpcLogCapture {
 public:
  GrpcLogCapture();
  ~GrpcLogCapture();
  GrpcLogCapture(const GrpcLogCapture&) = delete;
  GrpcLogCapture& operator=(const GrpcLogCapture&) = delete;

  // The captured lines; they will not be logged.
  std::vector<std::string> Take();
};

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_GRPC_LOGGING_H_
