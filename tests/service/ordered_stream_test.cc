// OrderedStreamReactor over real gRPC (127.0.0.1:<free port>), with a
// handler the test controls: the bound on messages read and not yet
// answered, parse failures told apart from the client's half-close, replies
// above the send limit, and `sent` running once per reply.
#include "server/service/ordered_stream.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/service/callback_service.h"

namespace reluserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using inference::ModelStreamInferResponse;

constexpr char kStreamMethod[] =
    "/inference.GRPCInferenceService/ModelStreamInfer";

// Polls `condition` every millisecond for at most `timeout`.
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Echoes each request's id into its response. While holding, answers wait
// until Release(). An id "fail" is answered INVALID_ARGUMENT; an id "big"
// with a 4000-byte id.
class StreamService final : public InferenceCallbackService {
 public:
  explicit StreamService(OrderedStreamReactor::Options options)
      : options_(options) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ModelStreamInfer(
      grpc::CallbackServerContext*) override {
    return new OrderedStreamReactor(
        [this](const ModelInferRequest& request, WireResponse& response,
               OrderedStreamReactor::Done done) {
          Handle(request, response, std::move(done));
        },
        options_);
  }

  void Hold() {
    std::lock_guard<std::mutex> lock(mutex_);
    holding_ = true;
  }

  // Answers every held request; later ones are answered at once.
  void Release() {
    std::vector<std::function<void()>> held;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      holding_ = false;
      held.swap(held_);
    }
    for (auto& answer : held) answer();
  }

  int handled() const { return handled_.load(); }
  int sent() const { return sent_.load(); }

 private:
  void Handle(const ModelInferRequest& request, WireResponse& response,
              OrderedStreamReactor::Done done) {
    ++handled_;
    const std::string id = request.id();
    auto answer = [this, id, &response, done = std::move(done)] {
      if (id == "fail") {
        done(absl::InvalidArgumentError("asked to fail"), [this] { ++sent_; });
        return;
      }
      response.SetHeader("", "", id == "big" ? std::string(4000, 'b') : id);
      done(absl::OkStatus(), [this] { ++sent_; });
    };
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (holding_) {
        held_.push_back(std::move(answer));
        return;
      }
    }
    answer();
  }

  const OrderedStreamReactor::Options options_;
  std::atomic<int> handled_{0};
  std::atomic<int> sent_{0};
  std::mutex mutex_;
  bool holding_ = false;                     // guarded by mutex_
  std::vector<std::function<void()>> held_;  // guarded by mutex_
};

ModelInferRequest WithId(const std::string& id) {
  ModelInferRequest request;
  request.set_model_name("linear_relu");
  request.set_id(id);
  return request;
}

grpc::ByteBuffer Wire(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

class OrderedStreamTest : public ::testing::Test {
 protected:
  void Start(const OrderedStreamReactor::Options& options) {
    service_ = std::make_unique<StreamService>(options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.SetMaxSendMessageSize(static_cast<int>(options.max_reply_bytes));
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                   grpc::InsecureChannelCredentials());
    stub_ = inference::GRPCInferenceService::NewStub(channel_);
  }

  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
    }
  }

  void SetDeadline(grpc::ClientContext& context) {
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(20));
  }

  std::unique_ptr<StreamService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(OrderedStreamTest, EveryRpcUsesTheCallbackApi) {
  Start({});
  EXPECT_FALSE(service_->has_synchronous_methods());
}

// The client writes ten messages and reads nothing: the stream reads four
// (the bound), no more while none is answered, and the rest once replies
// are written, all answered in order.
TEST_F(OrderedStreamTest, ReadingPausesAtTheBoundAndResumesAsRepliesGoOut) {
  OrderedStreamReactor::Options options;
  options.max_pending = 4;
  Start(options);
  service_->Hold();
  grpc::ClientContext context;
  SetDeadline(context);
  auto stream = stub_->ModelStreamInfer(&context);
  constexpr int kMessages = 10;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_TRUE(stream->Write(WithId("m" + std::to_string(i)))) << i;
  }
  ASSERT_TRUE(stream->WritesDone());
  ASSERT_TRUE(WaitFor([&] { return service_->handled() == 4; }))
      << service_->handled();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(service_->handled(), 4) << "read beyond the bound";

  service_->Release();
  for (int i = 0; i < kMessages; ++i) {
    ModelStreamInferResponse reply;
    ASSERT_TRUE(stream->Read(&reply)) << "reply " << i << " missing";
    EXPECT_EQ(reply.error_message(), "");
    EXPECT_EQ(reply.infer_response().id(), "m" + std::to_string(i));
  }
  ModelStreamInferResponse extra;
  EXPECT_FALSE(stream->Read(&extra));
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(service_->handled(), kMessages);
  EXPECT_TRUE(WaitFor([&] { return service_->sent() == kMessages; }))
      << service_->sent();
}

// gRPC's typed stream reports an unparseable message as the end of the
// stream; the reactor tells it apart: the messages before it are answered,
// then INVALID_ARGUMENT, never OK.
TEST_F(OrderedStreamTest, UnparseableMessageEndsTheStreamWithInvalidArgument) {
  Start({});
  grpc::ClientContext context;
  SetDeadline(context);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>
      stream(grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer,
                                                       grpc::ByteBuffer>::
                 Create(channel_.get(),
                        grpc::internal::RpcMethod(
                            kStreamMethod,
                            grpc::internal::RpcMethod::BIDI_STREAMING),
                        &context));
  // "\x08": the tag of varint field 1 with the varint missing.
  ASSERT_TRUE(stream->Write(Wire(WithId("first").SerializeAsString())));
  ASSERT_TRUE(stream->Write(Wire("\x08")));
  // The server may already have ended the stream: these may fail.
  stream->Write(Wire(WithId("third").SerializeAsString()));
  stream->WritesDone();

  grpc::ByteBuffer wire;
  ASSERT_TRUE(stream->Read(&wire));
  ModelStreamInferResponse reply;
  ASSERT_TRUE(grpc::SerializationTraits<ModelStreamInferResponse>::Deserialize(
                  &wire, &reply)
                  .ok());
  EXPECT_EQ(reply.infer_response().id(), "first");
  EXPECT_FALSE(stream->Read(&wire)) << "a message after the bad one answered";
  const grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << status.error_message();
  EXPECT_NE(status.error_message().find("message 2 of the stream could not be "
                                        "parsed"),
            std::string::npos)
      << status.error_message();
  EXPECT_EQ(service_->handled(), 1);
}

// A reply gRPC would refuse to send (and end the stream over) becomes an
// error_message; the stream goes on.
TEST_F(OrderedStreamTest, ReplyAboveTheSendLimitBecomesAnErrorMessage) {
  OrderedStreamReactor::Options options;
  options.max_reply_bytes = 1000;
  Start(options);
  grpc::ClientContext context;
  SetDeadline(context);
  auto stream = stub_->ModelStreamInfer(&context);
  for (const char* id : {"a", "big", "fail", "d"}) {
    ASSERT_TRUE(stream->Write(WithId(id))) << id;
  }
  ASSERT_TRUE(stream->WritesDone());
  ModelStreamInferResponse reply;
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(reply.infer_response().id(), "a");
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(reply.error_message().rfind("INTERNAL: the response is ", 0), 0u)
      << reply.error_message();
  EXPECT_NE(reply.error_message().find("send limit of 1000 bytes"),
            std::string::npos)
      << reply.error_message();
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(reply.error_message(), "INVALID_ARGUMENT: asked to fail");
  EXPECT_FALSE(reply.has_infer_response());
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_EQ(reply.infer_response().id(), "d");
  EXPECT_FALSE(stream->Read(&reply));
  const grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

// A client that goes away while its stream is paused: the stream still
// finishes, and every answered message's `sent` runs (nothing stays
// reserved).
TEST_F(OrderedStreamTest, PausedStreamWhoseClientCancelsFinishes) {
  OrderedStreamReactor::Options options;
  options.max_pending = 2;
  Start(options);
  service_->Hold();
  grpc::ClientContext context;
  SetDeadline(context);
  auto stream = stub_->ModelStreamInfer(&context);
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(stream->Write(WithId("m" + std::to_string(i)))) << i;
  }
  ASSERT_TRUE(WaitFor([&] { return service_->handled() == 2; }));
  context.TryCancel();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  service_->Release();
  // Until the server has seen the cancellation it may read and compute
  // messages the client already sent; every one it took is released.
  EXPECT_TRUE(WaitFor([&] { return service_->sent() == service_->handled(); }))
      << service_->sent() << " of " << service_->handled();
  EXPECT_GE(service_->handled(), 2);
  EXPECT_LE(service_->handled(), 5);
}

}  // namespace
}  // namespace reluserve
