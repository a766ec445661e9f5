// The service's limits over real gRPC: the message and send limits, the
// exact reply size behind them, streams that answer every message in order
// and go on after an error, and the pending-bytes budget (InferenceLimits)
// of replies nobody reads.
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/core/weights.h"
#include "server/runtime/request_validation.h"
#include "server/service/grpc_request.h"
#include "server/service/inference_service.h"
#include "server/service/server.h"
#include "tests/support/model_testing.h"
#include "tests/support/naive_reference.h"
#include "tests/support/service_testing.h"

namespace reluserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using ::reluserve::testing::AddInput;
using ::reluserve::testing::Bf16Bytes;
using ::reluserve::testing::Floats;
using ::reluserve::testing::kIn;
using ::reluserve::testing::kOut;
using ::reluserve::testing::RandomValues;
using ::reluserve::testing::RelativeError;
using ::reluserve::testing::SchedulingName;
using ::reluserve::testing::Schedulings;
using ::reluserve::testing::ServiceTest;

TEST_P(ServiceTest, MessageAboveTheConfiguredLimitIsResourceExhausted) {
  StartServer(kIn, kOut, /*max_batch=*/4);
  // The limit follows max batch: 4 rows plus 1 MiB of envelope; 20000 rows
  // of x are 2.96 MB.
  ModelInferResponse response;
  const grpc::Status status = Infer(Request(20000, false), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
  ExpectServerStillServes();
}

// ModelInfer arrives as raw bytes and is parsed by the service: bytes that
// are no ModelInferRequest get INVALID_ARGUMENT saying so.
TEST_P(ServiceTest, UnparseableRequestIsInvalidArgument) {
  auto channel = grpc::CreateChannel(server_->address(),
                                     grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(20));
  // "\x08": the tag of varint field 1 with the varint missing.
  grpc::Slice slice(std::string("\x08"));
  const grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer reply;
  const grpc::Status status =
      grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
          channel.get(),
          grpc::internal::RpcMethod(
              "/inference.GRPCInferenceService/ModelInfer",
              grpc::internal::RpcMethod::NORMAL_RPC),
          &context, request, &reply);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_NE(status.error_message().find(
                "could not be parsed as an inference.ModelInferRequest"),
            std::string::npos)
      << status.error_message();
  ExpectServerStillServes();
}

// Every message gets one response, in order, even when the scheduler
// computes them out of order or merges them; a bad message gets an
// error_message and the stream goes on.
TEST_P(ServiceTest, StreamAnswersEveryMessageInOrderAndSurvivesErrors) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  auto stream = stub_->ModelStreamInfer(&context);
  constexpr int kMessages = 12;
  constexpr int kBadMessage = 5;
  std::vector<ReferenceResult> expected;
  for (int i = 0; i < kMessages; ++i) {
    const int64_t rows = 1 + i % 4;
    ModelInferRequest request = Request(rows, /*with_grad_y=*/i % 3 == 0);
    request.set_id("message-" + std::to_string(i));
    if (i == kBadMessage) request.mutable_inputs(0)->set_datatype("FP64");
    expected.push_back(NaiveLinearRelu(weights_, rows, x_.data(),
                                       i % 3 == 0 ? grad_y_.data() : nullptr));
    ASSERT_TRUE(stream->Write(request)) << i;
  }
  ASSERT_TRUE(stream->WritesDone());
  for (int i = 0; i < kMessages; ++i) {
    inference::ModelStreamInferResponse reply;
    ASSERT_TRUE(stream->Read(&reply)) << "response " << i << " missing";
    if (i == kBadMessage) {
      EXPECT_NE(reply.error_message().find("INVALID_ARGUMENT"),
                std::string::npos)
          << reply.error_message();
      EXPECT_NE(reply.error_message().find("FP64"), std::string::npos);
      continue;
    }
    EXPECT_EQ(reply.error_message(), "") << i;
    const ModelInferResponse& response = reply.infer_response();
    EXPECT_EQ(response.id(), "message-" + std::to_string(i));
    ASSERT_GE(response.raw_output_contents_size(), 1) << i;
    EXPECT_LE(
        RelativeError(Floats(response.raw_output_contents(0)), expected[i].y),
        1e-5)
        << i;
    if (i % 3 == 0) {
      ASSERT_EQ(response.raw_output_contents_size(), 4) << i;
      EXPECT_LE(RelativeError(Floats(response.raw_output_contents(2)),
                              expected[i].grad_weight),
                1e-5)
          << i;
    }
  }
  inference::ModelStreamInferResponse extra;
  EXPECT_FALSE(stream->Read(&extra));
  const grpc::Status finished = stream->Finish();
  EXPECT_TRUE(finished.ok()) << finished.error_message();
  ExpectServerStillServes();
}

// BF16 x and grad_y of `rows` rows, asking for all four outputs in
// `output_datatype`.
ModelInferRequest Bf16Request(int64_t rows, int64_t in, int64_t out,
                              const std::string& output_datatype) {
  ModelInferRequest request;
  request.set_model_name("linear_relu");
  for (const auto& [name, width] :
       {std::pair{"x", in}, std::pair{"grad_y", out}}) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype("BF16");
    input->add_shape(rows);
    input->add_shape(width);
    request.add_raw_input_contents(
        Bf16Bytes(RandomValues(rows * width, 80 + width)));
  }
  for (const char* name : {"y", "grad_x", "grad_weight", "grad_bias"}) {
    auto* output = request.add_outputs();
    output->set_name(name);
    (*output->mutable_parameters())["datatype"].set_string_param(
        output_datatype);
  }
  return request;
}

ServedModelSpec ModelOf(int64_t in, int64_t out, int64_t max_batch) {
  ServedModelSpec model;
  model.config.max_batch = max_batch;
  model.model = testing::SingleLayerModel(MakeDefaultWeights(in, out, 1));
  return model;
}

// What the service computes before it allocates: the exact reply size.
absl::StatusOr<int64_t> ReplyBytes(const ModelInferRequest& request,
                                   const ServedModelSpec& model) {
  absl::StatusOr<InferenceRequest> neutral = FromModelInferRequest(request);
  if (!neutral.ok()) return neutral.status();
  absl::StatusOr<ValidatedRequest> validated = ValidateRequest(
      *neutral, model.model->signature(), model.config.max_batch);
  if (!validated.ok()) return validated.status();
  return ResponseBytes(*validated, model.model->signature(), model.config.name,
                       model.config.version, request.id());
}

// The id that makes the reply to `request` exactly `bytes` long, as a
// unary response or in a stream's wrapper; empty if no id does.
std::string IdForReplyBytes(ModelInferRequest request,
                            const ServedModelSpec& model, int64_t bytes,
                            bool streamed) {
  for (int64_t length = 0; length <= bytes; ++length) {
    request.set_id(std::string(length, 'i'));
    absl::StatusOr<int64_t> unary = ReplyBytes(request, model);
    if (!unary.ok()) return "";
    const int64_t reply = streamed ? StreamResponseBytes(*unary) : *unary;
    if (reply == bytes) return request.id();
    if (reply > bytes) return "";
    // Jump close to the answer: the id's length is what grows the reply.
    if (bytes - reply > 16) length += bytes - reply - 16;
  }
  return "";
}

// The service knows the exact size of each reply before anything is
// computed: checked against the replies it really sends.
TEST_P(ServiceTest, ReplySizeIsKnownExactlyBeforeCompute) {
  const ServedModelSpec model = ModelOf(kIn, kOut, 4096);
  std::vector<std::pair<std::string, ModelInferRequest>> cases;
  cases.emplace_back("forward", Request(3, false));
  cases.emplace_back("forward and backward", Request(200, true));
  ModelInferRequest subset = Request(2, true);
  subset.add_outputs()->set_name("grad_bias");
  subset.add_outputs()->set_name("y");
  subset.set_id(std::string(300, 'x'));
  cases.emplace_back("subset, 300-byte id", subset);
  ModelInferRequest image;
  image.set_model_name("linear_relu");
  image.set_model_version("1");
  AddInput(image, "x", {4, 1, kIn}, RandomValues(4 * kIn, 3));
  AddInput(image, "grad_y", {4, kOut}, RandomValues(4 * kOut, 4));
  image.set_id("image");
  cases.emplace_back("image-shaped x", image);
  ModelInferRequest mixed = Bf16Request(5, kIn, kOut, "BF16");
  (*mixed.mutable_outputs(1)->mutable_parameters())["datatype"]
      .set_string_param("FP32");
  cases.emplace_back("BF16 with an FP32 output", mixed);
  for (const auto& [name, request] : cases) {
    absl::StatusOr<int64_t> bytes = ReplyBytes(request, model);
    ASSERT_TRUE(bytes.ok()) << name << ": " << bytes.status();
    ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    ASSERT_TRUE(status.ok()) << name << ": " << status.error_message();
    EXPECT_EQ(*bytes, static_cast<int64_t>(response.ByteSizeLong())) << name;
  }
}

uint64_t ExecutionCount(inference::GRPCInferenceService::Stub& stub) {
  grpc::ClientContext context;
  inference::ModelStatisticsRequest request;
  inference::ModelStatisticsResponse response;
  EXPECT_TRUE(stub.ModelStatistics(&context, request, &response).ok());
  return response.model_stats_size() == 1
             ? response.model_stats(0).execution_count()
             : 0;
}

// At the maximum batch, BF16 inputs asking for FP32 outputs leave room in
// the request for an id that the reply cannot carry. A reply of exactly the
// send limit is served; one byte more is INVALID_ARGUMENT, naming both
// sizes, before compute (it used to compute, then fail RESOURCE_EXHAUSTED).
TEST_P(ServiceTest, ReplyAboveTheSendLimitIsRefusedBeforeCompute) {
  constexpr int64_t kMaxBatch = 8;
  StartServer(kIn, kOut, kMaxBatch);
  const ServedModelSpec model = ModelOf(kIn, kOut, kMaxBatch);
  const int64_t limit = server_->max_send_bytes();
  ModelInferRequest request = Bf16Request(kMaxBatch, kIn, kOut, "FP32");

  request.set_id(IdForReplyBytes(request, model, limit, /*streamed=*/false));
  ASSERT_FALSE(request.id().empty());
  ASSERT_LE(request.ByteSizeLong(), server_->max_receive_bytes());
  ModelInferResponse response;
  grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(static_cast<int64_t>(response.ByteSizeLong()), limit);

  const uint64_t executions = ExecutionCount(*stub_);
  request.set_id(request.id() + "i");
  ASSERT_LE(request.ByteSizeLong(), server_->max_receive_bytes());
  status = Infer(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_NE(status.error_message().find(absl::StrCat("would be ", limit + 1,
                                                     " bytes, above the "
                                                     "server's send limit of ",
                                                     limit, " bytes")),
            std::string::npos)
      << status.error_message();
  EXPECT_EQ(ExecutionCount(*stub_), executions) << "computed anyway";
  ExpectServerStillServes();
}

// On a stream the limit applies to the stream's wrapper, a few bytes more
// than the unary reply: a reply that fits it is served, one that does not
// gets its error_message, and the messages after it are all answered (it
// used to end the stream).
TEST_P(ServiceTest, StreamAnswersAReplyAboveTheSendLimitAndGoesOn) {
  constexpr int64_t kMaxBatch = 8;
  StartServer(kIn, kOut, kMaxBatch);
  const ServedModelSpec model = ModelOf(kIn, kOut, kMaxBatch);
  const int64_t limit = server_->max_send_bytes();
  ModelInferRequest fits = Bf16Request(kMaxBatch, kIn, kOut, "FP32");
  fits.set_id(IdForReplyBytes(fits, model, limit, /*streamed=*/true));
  ASSERT_FALSE(fits.id().empty());
  // Fits a unary reply, not the stream's wrapper.
  ModelInferRequest too_large = fits;
  too_large.set_id(IdForReplyBytes(fits, model, limit, /*streamed=*/false));
  ASSERT_FALSE(too_large.id().empty());

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  auto stream = stub_->ModelStreamInfer(&context);
  ASSERT_TRUE(stream->Write(fits));
  ASSERT_TRUE(stream->Write(too_large));
  constexpr int kLater = 7;
  for (int i = 0; i < kLater; ++i) {
    ModelInferRequest later = Request(1 + i % kMaxBatch, i % 2 == 0);
    later.set_id("later-" + std::to_string(i));
    ASSERT_TRUE(stream->Write(later)) << i;
  }
  ASSERT_TRUE(stream->WritesDone());
  inference::ModelStreamInferResponse reply;
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(reply.error_message(), "");
  EXPECT_EQ(static_cast<int64_t>(reply.ByteSizeLong()), limit);
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(reply.error_message().rfind("INVALID_ARGUMENT: the response would "
                                        "be ",
                                        0),
            0u)
      << reply.error_message();
  EXPECT_NE(reply.error_message().find(
                absl::StrCat("send limit of ", limit, " bytes")),
            std::string::npos)
      << reply.error_message();
  for (int i = 0; i < kLater; ++i) {
    ASSERT_TRUE(stream->Read(&reply)) << "later reply " << i << " missing";
    EXPECT_EQ(reply.error_message(), "") << i;
    EXPECT_EQ(reply.infer_response().id(), "later-" + std::to_string(i));
  }
  EXPECT_FALSE(stream->Read(&reply));
  const grpc::Status finished = stream->Finish();
  EXPECT_TRUE(finished.ok()) << finished.error_message();
}

INSTANTIATE_TEST_SUITE_P(AllSchedulings, ServiceTest, Schedulings(),
                         SchedulingName);

// An InferenceService with its own limits on 127.0.0.1:<free port>, with
// the message limits Server would set.
struct LimitedServer {
  LimitedServer(int64_t in, int64_t out, const InferenceLimits& limits,
                const Scheduler::Options& scheduling = {}) {
    model = ModelOf(in, out, 4096);
    model.scheduling = scheduling;
    in_features = in;
    out_features = out;
    service = std::make_unique<InferenceService>(
        std::vector<ServedModelSpec>{model}, limits);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.SetMaxReceiveMessageSize(MaxReceiveBytes(model));
    builder.SetMaxSendMessageSize(MaxSendBytes(model));
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
    if (server == nullptr) throw std::runtime_error("cannot start");
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(INT_MAX);
    args.SetMaxSendMessageSize(INT_MAX);
    // gRPC's default 64 KiB window, never grown by BDP probes: replies a
    // test leaves unread stay on the server and hold their bytes (with the
    // probes a window grown later let them drain under load).
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    stub = inference::GRPCInferenceService::NewStub(
        grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                  grpc::InsecureChannelCredentials(), args));
  }
  ~LimitedServer() {
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
  }

  ModelInferRequest Request(int64_t rows, const std::string& id) const {
    ModelInferRequest request;
    request.set_model_name("linear_relu");
    request.set_id(id);
    AddInput(request, "x", {rows, in_features},
             RandomValues(rows * in_features, rows));
    AddInput(request, "grad_y", {rows, out_features},
             RandomValues(rows * out_features, rows + 1));
    return request;
  }

  ServedModelSpec model;
  int64_t in_features = 0, out_features = 0;
  std::unique_ptr<InferenceService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub;
};

bool WaitFor(const std::function<bool()>& condition) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

TEST(InferenceLimitsTest, DefaultsFollowTheModel) {
  LimitedServer limited(kIn, kOut, InferenceLimits{});
  const InferenceLimits& limits = limited.service->limits();
  EXPECT_EQ(limits.max_stream_pending, 16);
  EXPECT_EQ(limits.max_send_bytes, MaxSendBytes(limited.model));
  EXPECT_EQ(limits.max_pending_bytes, int64_t{1} << 30);
  EXPECT_FALSE(limited.service->has_synchronous_methods());
}

// A stream whose replies nobody reads holds its requests' bytes; once they
// fill the budget, further work gets UNAVAILABLE with a retry hint (the
// stream's own later messages as error_message, a unary call as its
// status), and everything is given back once the replies are read.
TEST(InferenceLimitsTest, PendingBytesAreBoundedAndGivenBack) {
  constexpr int64_t kIn2 = 512, kOut2 = 64, kRows = 256;
  // One message: 590 KB of request, 704 KB of reply.
  InferenceLimits limits;
  limits.max_stream_pending = 64;
  limits.max_pending_bytes = 4 << 20;
  LimitedServer limited(kIn2, kOut2, limits);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(30));
  auto stream = limited.stub->ModelStreamInfer(&context);
  constexpr int kMessages = 10;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(stream->Write(limited.Request(kRows, "m" + std::to_string(i))));
  }
  ASSERT_TRUE(stream->WritesDone());
  // The stream read and answered its messages; at least two replies wait,
  // unread, holding more than half the budget (between two reads nothing
  // is in flight either, so the bytes held tell that the reading is done).
  ASSERT_TRUE(WaitFor([&] {
    return limited.service->requests_in_flight() == 0 &&
           limited.service->pending_bytes() > limits.max_pending_bytes / 2;
  })) << limited.service->pending_bytes();
  EXPECT_LE(limited.service->pending_bytes(), limits.max_pending_bytes);
  {
    grpc::ClientContext unary_context;
    ModelInferResponse response;
    const grpc::Status status = limited.stub->ModelInfer(
        &unary_context, limited.Request(2 * kRows, "unary"), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << status.error_message();
    EXPECT_NE(status.error_message().find("retry"), std::string::npos)
        << status.error_message();
  }
  int ok = 0, busy = 0;
  for (int i = 0; i < kMessages; ++i) {
    inference::ModelStreamInferResponse reply;
    ASSERT_TRUE(stream->Read(&reply)) << i;
    if (reply.error_message().empty()) {
      EXPECT_EQ(reply.infer_response().id(), "m" + std::to_string(i));
      ++ok;
    } else {
      EXPECT_EQ(reply.error_message().rfind("UNAVAILABLE: server busy", 0), 0u)
          << reply.error_message();
      ++busy;
    }
  }
  EXPECT_GE(ok, 2);
  EXPECT_GE(busy, 1);
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_TRUE(WaitFor([&] { return limited.service->pending_bytes() == 0; }))
      << limited.service->pending_bytes();
  // Served again once the bytes are back.
  grpc::ClientContext again_context;
  ModelInferResponse response;
  EXPECT_TRUE(limited.stub
                  ->ModelInfer(&again_context, limited.Request(kRows, "again"),
                               &response)
                  .ok());
}

// A request larger than the whole budget still runs when nothing else is
// held: any valid request can be served.
TEST(InferenceLimitsTest, RequestAboveTheBudgetRunsAlone) {
  InferenceLimits limits;
  limits.max_pending_bytes = 1000;
  LimitedServer limited(kIn, kOut, limits);
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext context;
    ModelInferResponse response;
    const grpc::Status status = limited.stub->ModelInfer(
        &context, limited.Request(64, "alone"), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(WaitFor([&] { return limited.service->pending_bytes() == 0; }));
  }
}

}  // namespace
}  // namespace reluserve
