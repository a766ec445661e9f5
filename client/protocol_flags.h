// The flags reluserve-client and reluserve-load share to say where and how
// to reach the server: --target, --protocol grpc|http and --http-json.
// Header-only: the binaries have CLI11 (through reluserve_common), the
// library does not.

#ifndef RELUSERVE_CLIENT_PROTOCOL_FLAGS_H_
#define RELUSERVE_CLIENT_PROTOCOL_FLAGS_H_

#include <map>
#include <string>

#include "CLI/CLI.hpp"
#include "client/http_connection.h"
#include "client/inference_client.h"

namespace reluserve {

struct ProtocolFlags {
  std::string target;  // empty: DefaultTarget(protocol)
  Protocol protocol = Protocol::kGrpc;
  bool http_json = false;

  std::string Target() const {
    return target.empty() ? DefaultTarget(protocol) : target;
  }
  HttpTensors http_tensors() const {
    return http_json ? HttpTensors::kJson : HttpTensors::kBinary;
  }
  // What is wrong with the combination (a usage error), or empty. `tls`:
  // TLS flags were given.
  std::string Problem(bool tls = false) const {
    if (http_json && protocol != Protocol::kHttp) {
      return "--http-json goes with --protocol http";
    }
    if (protocol == Protocol::kHttp) {
      return std::string(ParseHttpTarget(Target(), tls).status().message());
    }
    return "";
  }
};

inline void AddProtocolFlags(CLI::App& app, ProtocolFlags& flags) {
  app.add_option("--target", flags.target,
                 "Server address; gRPC also takes several as "
                 "ipv4:HOST:PORT,HOST:PORT,..., HTTP https://HOST:PORT "
                 "(environment: RELUSERVE_TARGET)")
      ->type_name("HOST:PORT")
      ->envname("RELUSERVE_TARGET")
      ->default_str(std::string(DefaultTarget(Protocol::kGrpc)) +
                    " (http: " + DefaultTarget(Protocol::kHttp) + ")");
  const std::map<std::string, Protocol> protocols = {{"grpc", Protocol::kGrpc},
                                                     {"http", Protocol::kHttp}};
  app.add_option("--protocol", flags.protocol,
                 "gRPC (GRPCInferenceService) or HTTP/1.1 (KServe v2 REST, "
                 "keep-alive, Triton's binary tensor extension)")
      ->transform(
          CLI::CheckedTransformer(protocols, CLI::ignore_case).description(""))
      ->type_name("grpc|http")
      ->default_str("grpc");
  app.add_flag("--http-json", flags.http_json,
               "With --protocol http: tensors as JSON numbers both ways "
               "instead of binary data (FP32 only)");
}

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_PROTOCOL_FLAGS_H_
