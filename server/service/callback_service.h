#ifndef RELUSERVE_SERVER_SERVICE_CALLBACK_SERVICE_H_
#define RELUSERVE_SERVER_SERVICE_CALLBACK_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "grpc_service.grpc.pb.h"

namespace reluserve {

// GRPCInferenceService's callback service with both inference RPCs on raw
// bytes (the other RPCs as generated):
// - ModelInfer, so that the reply goes out as the slices the model wrote
//   (WireResponse) rather than through a serializing copy;
// - ModelStreamInfer, because gRPC's typed stream reports a message it
//   cannot parse exactly like the client's half-close; the stream parses its
//   messages itself (OrderedStreamReactor) to tell the two apart.
// Every RPC of the proto must be listed here: one left out would be served
// by gRPC's synchronous API (tests check has_synchronous_methods()).
namespace callback_service_internal {
using Oip = inference::GRPCInferenceService;
using Index = Oip::WithCallbackMethod_RepositoryIndex<Oip::Service>;
using Config = Oip::WithCallbackMethod_ModelConfig<Index>;
using Statistics = Oip::WithCallbackMethod_ModelStatistics<Config>;
using Stream = Oip::WithRawCallbackMethod_ModelStreamInfer<Statistics>;
using Infer = Oip::WithRawCallbackMethod_ModelInfer<Stream>;
using ModelMetadata = Oip::WithCallbackMethod_ModelMetadata<Infer>;
using ServerMetadata = Oip::WithCallbackMethod_ServerMetadata<ModelMetadata>;
using ModelReady = Oip::WithCallbackMethod_ModelReady<ServerMetadata>;
using ServerReady = Oip::WithCallbackMethod_ServerReady<ModelReady>;
}  // namespace callback_service_internal
using InferenceCallbackService =
    callback_service_internal::Oip::WithCallbackMethod_ServerLive<
        callback_service_internal::ServerReady>;

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_CALLBACK_SERVICE_H_
