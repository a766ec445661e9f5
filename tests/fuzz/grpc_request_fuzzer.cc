// The gRPC request path from a ModelInfer call's raw message bytes: parsed
// as InferenceService parses them, FromModelInferRequest, the runtime's
// validation against the signature, reply sizing and, for a request that
// validates, the compute (small models, at most 8 rows) into the
// hand-encoded WireResponse. Beyond "no crash" it checks that a bad request
// gets INVALID_ARGUMENT or NOT_FOUND, that nothing stays held, and that an
// answered reply parses back as the message and size it claims to be.
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "grpc_service.pb.h"
#include "server/service/grpc_logging.h"
#include "server/service/grpc_request.h"
#include "server/service/inference_runtime.h"
#include "server/service/wire_response.h"
#include "tests/support/fuzz_models.h"
#include "tests/support/fuzz_testing.h"

namespace reluserve {
namespace {

using testing::FuzzCheckFailed;

template <typename Message>
bool ParseWire(grpc::ByteBuffer wire, Message* message) {
  return grpc::SerializationTraits<Message>::Deserialize(&wire, message).ok();
}

int64_t ElementBytes(const std::string& datatype) {
  if (datatype == "FP32") return 4;
  if (datatype == "BF16") return 2;
  FuzzCheckFailed("reply output with an unknown datatype");
  return 0;
}

void CheckReply(const WireResponse& response,
                const inference::ModelInferRequest& request) {
  inference::ModelInferResponse reply;
  if (!ParseWire(response.Release(/*streamed=*/false), &reply)) {
    FuzzCheckFailed("the reply does not parse as a ModelInferResponse");
  }
  if (static_cast<int64_t>(reply.ByteSizeLong()) != response.ByteSize()) {
    FuzzCheckFailed("the reply's size differs from WireResponse::ByteSize");
  }
  if (reply.id() != request.id() ||
      reply.model_name() != request.model_name() ||
      reply.outputs_size() != reply.raw_output_contents_size() ||
      reply.outputs_size() == 0) {
    FuzzCheckFailed("the reply's header does not match the request");
  }
  // Exactly the outputs asked for, in their order and datatypes.
  if (request.outputs_size() > 0 &&
      request.outputs_size() != reply.outputs_size()) {
    FuzzCheckFailed("the reply's outputs are not the ones asked for");
  }
  for (int i = 0; i < request.outputs_size(); ++i) {
    const auto& asked = request.outputs(i);
    const auto datatype = asked.parameters().find(kDatatypeParameter);
    if (asked.name() != reply.outputs(i).name() ||
        (datatype != asked.parameters().end() &&
         datatype->second.string_param() != reply.outputs(i).datatype())) {
      FuzzCheckFailed("an output differs from the one asked for");
    }
  }
  for (int i = 0; i < reply.outputs_size(); ++i) {
    int64_t count = 1;
    for (int64_t dim : reply.outputs(i).shape()) count *= dim;
    if (count * ElementBytes(reply.outputs(i).datatype()) !=
        static_cast<int64_t>(reply.raw_output_contents(i).size())) {
      FuzzCheckFailed("an output's bytes differ from its shape");
    }
  }
  inference::ModelStreamInferResponse streamed;
  if (!ParseWire(response.Release(/*streamed=*/true), &streamed) ||
      streamed.infer_response().ByteSizeLong() != reply.ByteSizeLong()) {
    FuzzCheckFailed("the streamed reply does not wrap the same message");
  }
}

}  // namespace
}  // namespace reluserve

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // As the server does: protobuf's complaints (a string field that is not
  // UTF-8, most mutated inputs) go to spdlog, which the fuzz runtime turns
  // off, rather than to stderr.
  reluserve::testing::FuzzRuntime();
  reluserve::RouteGrpcLogsToSpdlog();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace reluserve;
  InferenceRuntime& runtime = testing::FuzzRuntime();
  grpc::Slice slice(data, size);
  inference::ModelInferRequest request;
  if (!ParseWire(grpc::ByteBuffer(&slice, 1), &request)) return 0;

  WireResponse response;
  GrpcReply reply(response, request.id(), runtime.limits().max_send_bytes,
                  /*streamed=*/false);
  testing::FuzzStart(runtime, ToRuntimeRequest(request, /*streamed=*/false),
                     reply, [&] { CheckReply(response, request); });
  return 0;
}
