#ifndef RELUSERVE_SERVER_SERVICE_GRPC_CALL_METRICS_H_
#define RELUSERVE_SERVER_SERVICE_GRPC_CALL_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_interceptor.h"
#include "server/service/prometheus_text.h"

namespace reluserve {

// grpc_server_handled_total{grpc_service, grpc_method, grpc_code}: calls
// finished, by method and status code, the usual gRPC server metric.
//
// Thread safety: Record() and Write() may be called concurrently. A method
// seen before costs a shared lock and one atomic add.
class GrpcCallCounter {
 public:
  // `method`: gRPC's full name, "/package.Service/Method".
  void Record(std::string_view method, grpc::StatusCode code);
  // Writes the family (HELP, TYPE and a sample per method and code seen).
  void Write(PrometheusText& out) const;

 private:
  static constexpr int kCodes = 17;  // OK .. UNAUTHENTICATED
  struct Counts {
    std::array<std::atomic<uint64_t>, kCodes> by_code{};
  };

  mutable absl::Mutex mutex_;
  std::map<std::string, std::unique_ptr<Counts>, std::less<>> by_method_
      ABSL_GUARDED_BY(mutex_);
};

// An interceptor factory that records every call's status in `counter`,
// which must outlive the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeCallCountingInterceptorFactory(GrpcCallCounter* counter);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_GRPC_CALL_METRICS_H_
