#ifndef RELUSERVE_TESTS_SUPPORT_LOOPBACK_SERVER_H_
#define RELUSERVE_TESTS_SUPPORT_LOOPBACK_SERVER_H_

// An in-process gRPC server for the client tests' fake services, on
// 127.0.0.1:<free port>.

#include <memory>
#include <utility>
#include <vector>

#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace reluserve::testing {

using ServerInterceptors = std::vector<
    std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>;

// Serves `service` on 127.0.0.1 at a port the kernel picks, written to
// `*port`; SO_REUSEPORT off, so no other server shares it. Receives messages
// up to 64 MiB. Plaintext unless `credentials` say otherwise. nullptr (and
// *port 0) when the server cannot start.
inline std::unique_ptr<grpc::Server> StartOnLoopback(
    grpc::Service* service, int* port,
    std::shared_ptr<grpc::ServerCredentials> credentials = nullptr,
    ServerInterceptors interceptors = {}) {
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(
      "127.0.0.1:0",
      credentials != nullptr ? credentials : grpc::InsecureServerCredentials(),
      port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.RegisterService(service);
  if (!interceptors.empty()) {
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
  }
  return builder.BuildAndStart();
}

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_LOOPBACK_SERVER_H_
