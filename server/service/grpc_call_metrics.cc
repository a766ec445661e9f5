#include "server/service/grpc_call_metrics.h"

#include <utility>

namespace reluserve {
namespace {

constexpr const char* kCodeNames[] = {"OK",
                                      "Canceled",
                                      "Unknown",
                                      "InvalidArgument",
                                      "DeadlineExceeded",
                                      "NotFound",
                                      "AlreadyExists",
                                      "PermissionDenied",
                                      "ResourceExhausted",
                                      "FailedPrecondition",
                                      "Aborted",
                                      "OutOfRange",
                                      "Unimplemented",
                                      "Internal",
                                      "Unavailable",
                                      "DataLoss",
                                      "Unauthenticated"};

class CallCountingInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallCountingInterceptor(GrpcCallCounter* counter, const char* method)
      : counter_(counter), method_(method) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      counter_->Record(method_, methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  GrpcCallCounter* const counter_;
  const char* const method_;  // gRPC's, alive as long as the call
};

class CallCountingFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit CallCountingFactory(GrpcCallCounter* counter) : counter_(counter) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new CallCountingInterceptor(counter_, info->method());
  }

 private:
  GrpcCallCounter* const counter_;
};

// "/inference.GRPCInferenceService/ModelInfer" →
// ("inference.GRPCInferenceService", "ModelInfer").
std::pair<std::string_view, std::string_view> SplitMethod(
    std::string_view full_name) {
  if (!full_name.empty() && full_name.front() == '/')
    full_name.remove_prefix(1);
  const size_t slash = full_name.rfind('/');
  if (slash == std::string_view::npos) return {"", full_name};
  return {full_name.substr(0, slash), full_name.substr(slash + 1)};
}

}  // namespace

void GrpcCallCounter::Record(std::string_view method, grpc::StatusCode code) {
  const int index = static_cast<int>(code);
  if (index < 0 || index >= kCodes) return;
  {
    absl::ReaderMutexLock lock(&mutex_);
    auto it = by_method_.find(method);
    if (it != by_method_.end()) {
      it->second->by_code[index].fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  absl::MutexLock lock(&mutex_);
  std::unique_ptr<Counts>& counts = by_method_[std::string(method)];
  if (counts == nullptr) counts = std::make_unique<Counts>();
  counts->by_code[index].fetch_add(1, std::memory_order_relaxed);
}

void GrpcCallCounter::Write(PrometheusText& out) const {
  out.Family("grpc_server_handled_total", "counter",
             "gRPC calls completed on the server, by method and status code.");
  absl::ReaderMutexLock lock(&mutex_);
  for (const auto& [method, counts] : by_method_) {
    const auto [service, name] = SplitMethod(method);
    for (int code = 0; code < kCodes; ++code) {
      const uint64_t count =
          counts->by_code[code].load(std::memory_order_relaxed);
      // Codes never seen are left out, except OK, so that a method's rate
      // exists from its first call.
      if (count == 0 && code != 0) continue;
      out.Sample("grpc_server_handled_total",
                 {{"grpc_service", service},
                  {"grpc_method", name},
                  {"grpc_code", kCodeNames[code]}},
                 count);
    }
  }
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeCallCountingInterceptorFactory(GrpcCallCounter* counter) {
  return std::make_unique<CallCountingFactory>(counter);
}

}  // namespace reluserve
