// The service over real gRPC: a Server on 127.0.0.1:<free port> in this
// process, called through the generated stub over a real socket.
#include "server/service/inference_service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/core/naive_reference.h"
#include "server/core/precision.h"
#include "server/core/weights.h"
#include "server/service/request_validation.h"
#include "server/service/server.h"
#include "tests/support/tensor_testing.h"

namespace reluserve {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using ::reluserve::testing::RandomValues;
using ::reluserve::testing::RelativeError;

constexpr int64_t kIn = 37, kOut = 13;

std::string Bytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(float));
}

std::vector<float> Floats(const std::string& bytes) {
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

void AddInput(ModelInferRequest& request, const std::string& name,
              std::vector<int64_t> shape, const std::vector<float>& values) {
  auto* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype("FP32");
  for (int64_t dim : shape) input->add_shape(dim);
  request.add_raw_input_contents(Bytes(values));
}

// How the server runs its computations; every service test runs in each.
struct Scheduling {
  std::string name;
  Scheduler::Options options;
};

Scheduling Inline() { return {"Inline", {}}; }

Scheduling ComputePool() {
  Scheduling pool{"ComputePool", {}};
  pool.options.compute_threads = 2;
  return pool;
}

Scheduling DynamicBatching() {
  Scheduling batching{"DynamicBatching", {}};
  batching.options.compute_threads = 2;
  batching.options.max_batch_delay = std::chrono::milliseconds(2);
  batching.options.preferred_batch_rows = 64;
  return batching;
}

class ServiceTest : public ::testing::TestWithParam<Scheduling> {
 protected:
  void StartServer(int64_t in_features, int64_t out_features,
                   int64_t max_batch = 4096) {
    weights_ = MakeDefaultWeights(in_features, out_features, 5);
    weights_.bias = RandomValues(out_features, 6);
    absl::StatusOr<std::unique_ptr<LinearRelu>> layer =
        LinearRelu::Create(weights_);
    if (!layer.ok()) throw std::runtime_error(layer.status().ToString());
    Server::Options options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.model.in_features = in_features;
    options.model.out_features = out_features;
    options.model.max_batch = max_batch;
    options.scheduling = GetParam().options;
    options.scheduling.max_batch_rows = max_batch;
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Start(options, std::move(*layer));
    if (!server.ok()) throw std::runtime_error(server.status().ToString());
    server_ = std::move(*server);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(INT_MAX);
    args.SetMaxSendMessageSize(INT_MAX);
    stub_ = inference::GRPCInferenceService::NewStub(grpc::CreateCustomChannel(
        server_->address(), grpc::InsecureChannelCredentials(), args));
  }

  void SetUp() override { StartServer(kIn, kOut); }

  grpc::Status Infer(const ModelInferRequest& request,
                     ModelInferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(20));
    return stub_->ModelInfer(&context, request, response);
  }

  ModelInferRequest Request(int64_t batch, bool with_grad_y) {
    ModelInferRequest request;
    request.set_model_name("linear_relu");
    x_ = RandomValues(batch * weights_.in_features, 100 + batch);
    AddInput(request, "x", {batch, weights_.in_features}, x_);
    if (with_grad_y) {
      grad_y_ = RandomValues(batch * weights_.out_features, 200 + batch);
      AddInput(request, "grad_y", {batch, weights_.out_features}, grad_y_);
    }
    return request;
  }

  void ExpectServerStillServes() {
    ModelInferResponse response;
    const grpc::Status status = Infer(Request(2, true), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.outputs_size(), 4);
  }

  LinearWeights weights_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  std::vector<float> x_, grad_y_;
};

TEST_P(ServiceTest, HealthAndReadiness) {
  {
    grpc::ClientContext context;
    inference::ServerLiveResponse response;
    ASSERT_TRUE(stub_->ServerLive(&context, {}, &response).ok());
    EXPECT_TRUE(response.live());
  }
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse response;
    ASSERT_TRUE(stub_->ServerReady(&context, {}, &response).ok());
    EXPECT_TRUE(response.ready());
  }
  for (const auto& [name, version, ready] :
       std::vector<std::tuple<std::string, std::string, bool>>{
           {"linear_relu", "", true},
           {"linear_relu", "1", true},
           {"linear_relu", "2", false},
           {"resnet50", "", false}}) {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelReadyResponse response;
    ASSERT_TRUE(stub_->ModelReady(&context, request, &response).ok());
    EXPECT_EQ(response.ready(), ready) << name << " v" << version;
  }
}

TEST_P(ServiceTest, ServerMetadataNamesTheServer) {
  grpc::ClientContext context;
  inference::ServerMetadataResponse response;
  ASSERT_TRUE(stub_->ServerMetadata(&context, {}, &response).ok());
  EXPECT_EQ(response.name(), "reluserve");
  EXPECT_FALSE(response.version().empty());
  EXPECT_EQ(std::vector<std::string>(response.extensions().begin(),
                                     response.extensions().end()),
            (std::vector<std::string>{"statistics", "model_configuration"}));
}

TEST_P(ServiceTest, ModelMetadataDescribesTheContract) {
  grpc::ClientContext context;
  inference::ModelMetadataRequest request;
  request.set_name("linear_relu");
  inference::ModelMetadataResponse response;
  ASSERT_TRUE(stub_->ModelMetadata(&context, request, &response).ok());
  EXPECT_EQ(response.name(), "linear_relu");
  ASSERT_EQ(response.versions_size(), 1);
  EXPECT_EQ(response.versions(0), "1");
  auto describe = [](const auto& tensors) {
    std::vector<std::string> described;
    for (const auto& t : tensors) {
      std::string shape;
      for (int64_t dim : t.shape()) shape += std::to_string(dim) + ",";
      described.push_back(t.name() + ":" + t.datatype() + ":" + shape);
    }
    return described;
  };
  EXPECT_EQ(describe(response.inputs()),
            (std::vector<std::string>{"x:FP32:-1,37,", "grad_y:FP32:-1,13,"}));
  EXPECT_EQ(describe(response.outputs()),
            (std::vector<std::string>{"y:FP32:-1,13,", "grad_x:FP32:-1,37,",
                                      "grad_weight:FP32:13,37,",
                                      "grad_bias:FP32:13,"}));

  grpc::ClientContext unknown_context;
  request.set_name("resnet50");
  const grpc::Status unknown =
      stub_->ModelMetadata(&unknown_context, request, &response);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(unknown.error_message().find("resnet50"), std::string::npos);
  EXPECT_NE(unknown.error_message().find("linear_relu"), std::string::npos);
}

TEST_P(ServiceTest, ForwardMatchesReferenceAndEchoesIdentity) {
  ModelInferRequest request = Request(5, false);
  request.set_id("request-42");
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  EXPECT_EQ(response.id(), "request-42");
  EXPECT_EQ(response.model_name(), "linear_relu");
  EXPECT_EQ(response.model_version(), "1");
  ASSERT_EQ(response.outputs_size(), 1);
  ASSERT_EQ(response.raw_output_contents_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "y");
  EXPECT_EQ(response.outputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(response.outputs(0).shape().begin(),
                                 response.outputs(0).shape().end()),
            (std::vector<int64_t>{5, kOut}));
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 5, x_.data(), nullptr);
  EXPECT_LE(RelativeError(Floats(response.raw_output_contents(0)), expected.y),
            1e-5);
}

TEST_P(ServiceTest, ForwardBackwardReturnsAllFourInContractOrder) {
  ModelInferResponse response;
  ASSERT_TRUE(Infer(Request(7, true), &response).ok());
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 7, x_.data(), grad_y_.data());
  const std::vector<std::pair<std::string, const std::vector<double>*>> want = {
      {"y", &expected.y},
      {"grad_x", &expected.grad_x},
      {"grad_weight", &expected.grad_weight},
      {"grad_bias", &expected.grad_bias}};
  ASSERT_EQ(response.outputs_size(), 4);
  ASSERT_EQ(response.raw_output_contents_size(), 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(response.outputs(i).name(), want[i].first);
    const std::vector<float> got = Floats(response.raw_output_contents(i));
    ASSERT_EQ(got.size(), want[i].second->size()) << want[i].first;
    EXPECT_LE(RelativeError(got, *want[i].second), 1e-5) << want[i].first;
  }
}

TEST_P(ServiceTest, RequestedOutputsComeExactlyAndInOrder) {
  ModelInferRequest request = Request(3, true);
  request.add_outputs()->set_name("grad_bias");
  request.add_outputs()->set_name("y");
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 2);
  EXPECT_EQ(response.outputs(0).name(), "grad_bias");
  EXPECT_EQ(response.outputs(1).name(), "y");
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 3, x_.data(), grad_y_.data());
  EXPECT_LE(RelativeError(Floats(response.raw_output_contents(0)),
                          expected.grad_bias),
            1e-5);
  EXPECT_LE(RelativeError(Floats(response.raw_output_contents(1)), expected.y),
            1e-5);

  // grad_y present but only y asked for: only y comes back.
  ModelInferRequest only_y = Request(3, true);
  only_y.add_outputs()->set_name("y");
  ASSERT_TRUE(Infer(only_y, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "y");
}

TEST_P(ServiceTest, TypedFp32ContentsWork) {
  ModelInferRequest request;
  request.set_model_name("linear_relu");
  const std::vector<float> x = RandomValues(2 * kIn, 7);
  const std::vector<float> grad_y = RandomValues(2 * kOut, 8);
  for (const auto& [name, values, width] :
       {std::tuple{"x", &x, kIn}, std::tuple{"grad_y", &grad_y, kOut}}) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype("FP32");
    input->add_shape(2);
    input->add_shape(width);
    for (float v : *values) input->mutable_contents()->add_fp32_contents(v);
  }
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 2, x.data(), grad_y.data());
  ASSERT_EQ(response.raw_output_contents_size(), 4);
  EXPECT_LE(
      RelativeError(Floats(response.raw_output_contents(1)), expected.grad_x),
      1e-5);
}

TEST_P(ServiceTest, ImageShapedBatchKeepsItsShapeInGradX) {
  StartServer(3072, 100);
  ModelInferRequest request;
  request.set_model_name("linear_relu");
  const std::vector<float> x = RandomValues(4 * 3072, 9);
  const std::vector<float> grad_y = RandomValues(4 * 100, 10);
  AddInput(request, "x", {4, 3, 32, 32}, x);
  AddInput(request, "grad_y", {4, 100}, grad_y);
  ModelInferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 4);
  EXPECT_EQ(std::vector<int64_t>(response.outputs(1).shape().begin(),
                                 response.outputs(1).shape().end()),
            (std::vector<int64_t>{4, 3, 32, 32}));
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 4, x.data(), grad_y.data());
  EXPECT_LE(
      RelativeError(Floats(response.raw_output_contents(1)), expected.grad_x),
      1e-5);
}

TEST_P(ServiceTest, RequestAboveGrpcDefaultFourMebibytesSucceeds) {
  StartServer(3072, 100);
  // 400 × 3072 × 4 bytes = 4.9 MB of x, past gRPC's 4 MiB default.
  ModelInferResponse response;
  ASSERT_TRUE(Infer(Request(400, true), &response).ok());
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 400, x_.data(), grad_y_.data());
  EXPECT_LE(RelativeError(Floats(response.raw_output_contents(0)), expected.y),
            1e-5);
  EXPECT_LE(RelativeError(Floats(response.raw_output_contents(2)),
                          expected.grad_weight),
            1e-5);
}

struct BadRequestCase {
  std::string name;
  std::function<void(ModelInferRequest&)> spoil;
  grpc::StatusCode code;
  std::vector<std::string> message_mentions;
};

// Every row of API.md's status table that a request alone can cause.
TEST_P(ServiceTest, MalformedRequestsGetTheContractStatus) {
  const std::vector<BadRequestCase> cases = {
      {"unknown model",
       [](auto& r) { r.set_model_name("resnet50"); },
       grpc::StatusCode::NOT_FOUND,
       {"resnet50", "linear_relu"}},
      {"unknown version",
       [](auto& r) { r.set_model_version("3"); },
       grpc::StatusCode::NOT_FOUND,
       {"'3'", "version 1"}},
      {"missing x",
       [](auto& r) {
         r.mutable_inputs()->DeleteSubrange(0, 1);
         r.mutable_raw_input_contents()->DeleteSubrange(0, 1);
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"missing input 'x'", "[N, 37]"}},
      {"unknown input",
       [](auto& r) { r.mutable_inputs(1)->set_name("z"); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'z'", "grad_y"}},
      {"unknown output",
       [](auto& r) { r.add_outputs()->set_name("logits"); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'logits'", "grad_weight"}},
      {"wrong datatype",
       [](auto& r) { r.mutable_inputs(0)->set_datatype("FP16"); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "FP32", "FP16"}},
      {"wrong rank",
       [](auto& r) {
         r.mutable_inputs(0)->clear_shape();
         r.mutable_inputs(0)->add_shape(37);
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "[N, 37]", "[37]"}},
      {"wrong features",
       [](auto& r) { r.mutable_inputs(0)->set_shape(1, 36); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "37", "[2, 36]"}},
      {"wrong grad_y shape",
       [](auto& r) { r.mutable_inputs(1)->set_shape(1, 12); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'grad_y'", "[2, 13]", "[2, 12]"}},
      {"byte count",
       [](auto& r) { r.mutable_raw_input_contents(0)->pop_back(); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "296 bytes", "295"}},
      {"raw and typed mixed",
       [](auto& r) {
         r.mutable_inputs(1)->mutable_contents()->add_fp32_contents(1.0f);
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'grad_y'", "not both"}},
      {"raw count",
       [](auto& r) { r.mutable_raw_input_contents()->RemoveLast(); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"one raw_input_contents", "(2)", "1"}},
      {"N = 0",
       [](auto& r) {
         r.mutable_inputs(0)->set_shape(0, 0);
         r.mutable_inputs()->DeleteSubrange(1, 1);
         r.mutable_raw_input_contents()->DeleteSubrange(1, 1);
         r.mutable_raw_input_contents(0)->clear();
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "N >= 1", "[0, 37]"}},
      {"negative dimension",
       [](auto& r) { r.mutable_inputs(0)->set_shape(0, -2); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "non-negative", "[-2, 37]"}},
      {"shape overflow",
       [](auto& r) {
         r.mutable_inputs(0)->set_shape(0, int64_t{1} << 40);
         r.mutable_inputs(0)->add_shape(int64_t{1} << 40);
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "overflows"}},
      {"gradient without grad_y",
       [](auto& r) {
         r.mutable_inputs()->DeleteSubrange(1, 1);
         r.mutable_raw_input_contents()->DeleteSubrange(1, 1);
         r.add_outputs()->set_name("grad_x");
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'grad_x'", "'grad_y'"}},
      {"typed field of another datatype",
       [](auto& r) {
         r.clear_raw_input_contents();
         r.mutable_inputs()->DeleteSubrange(1, 1);
         for (int i = 0; i < 2 * 37; ++i) {
           r.mutable_inputs(0)->mutable_contents()->add_int_contents(1);
         }
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "fp32_contents", "int_contents"}},
      {"duplicate input",
       [](auto& r) { r.mutable_inputs(1)->set_name("x"); },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'x'", "twice"}},
      {"duplicate output",
       [](auto& r) {
         r.add_outputs()->set_name("y");
         r.add_outputs()->set_name("y");
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"'y'", "twice"}},
      {"batch above maximum",
       [](auto& r) {
         // A real 5000-row request (740 KB), not just a shape.
         r.mutable_inputs(0)->set_shape(0, 5000);
         *r.mutable_raw_input_contents(0) = Bytes(RandomValues(5000 * 37, 3));
         r.mutable_inputs(1)->set_shape(0, 5000);
         *r.mutable_raw_input_contents(1) = Bytes(RandomValues(5000 * 13, 4));
       },
       grpc::StatusCode::INVALID_ARGUMENT,
       {"5000", "maximum", "4096"}},
  };
  for (const BadRequestCase& bad : cases) {
    ModelInferRequest request = Request(2, true);
    bad.spoil(request);
    ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    EXPECT_EQ(status.error_code(), bad.code)
        << bad.name << ": " << status.error_message();
    for (const std::string& mention : bad.message_mentions) {
      EXPECT_NE(status.error_message().find(mention), std::string::npos)
          << bad.name << ": '" << status.error_message() << "' lacks '"
          << mention << "'";
    }
    EXPECT_EQ(response.outputs_size(), 0) << bad.name;
    ExpectServerStillServes();
  }
}

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

TEST_P(ServiceTest, SecondServerOnABusyPortFailsClearly) {
  Server::Options options;
  options.port = server_->port();
  absl::StatusOr<std::unique_ptr<LinearRelu>> layer =
      LinearRelu::Create(weights_);
  ASSERT_TRUE(layer.ok());
  options.model.in_features = kIn;
  options.model.out_features = kOut;
  absl::StatusOr<std::unique_ptr<Server>> second =
      Server::Start(options, std::move(*layer));
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(server_->address()),
            std::string::npos)
      << second.status();
  ExpectServerStillServes();
}

// Shutdown while every caller has a large call outstanding: calls already
// computing finish with correct results, later ones get UNAVAILABLE (or
// cannot connect, also UNAVAILABLE), and none is cancelled or lost.
TEST_P(ServiceTest, ShutdownFinishesCallsInFlightAndTurnsTheRestAway) {
  StartServer(3072, 100);
  constexpr int kCallers = 6, kMaxCallsEach = 200;
  const ModelInferRequest request = Request(256, true);  // 3.1 MB of x
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 256, x_.data(), grad_y_.data());
  std::atomic<int> warmed_up{0};
  std::vector<int> ok(kCallers, 0), unavailable(kCallers, 0),
      other(kCallers, 0);
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int i = 0; i < kMaxCallsEach; ++i) {
        ModelInferResponse response;
        const grpc::Status status = Infer(request, &response);
        if (status.ok()) {
          EXPECT_LE(RelativeError(Floats(response.raw_output_contents(1)),
                                  expected.grad_x),
                    1e-5);
          if (ok[c]++ == 0) ++warmed_up;
        } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
          ++unavailable[c];
          break;
        } else {
          ++other[c];
          ADD_FAILURE() << "caller " << c << ": " << status.error_code() << " "
                        << status.error_message();
          break;
        }
      }
    });
  }
  const auto give_up =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (warmed_up.load() < kCallers &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(warmed_up.load(), kCallers);
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
  for (std::thread& caller : callers) caller.join();
  for (int c = 0; c < kCallers; ++c) {
    EXPECT_EQ(other[c], 0) << "caller " << c;
    EXPECT_EQ(unavailable[c], 1) << "caller " << c << " was never turned away";
  }
}

std::string Bf16Bytes(const std::vector<float>& values) {
  std::vector<uint16_t> rounded(values.size());
  ToBfloat16(values.data(), rounded.data(), values.size());
  return std::string(reinterpret_cast<const char*>(rounded.data()),
                     rounded.size() * sizeof(uint16_t));
}

std::vector<float> Bf16Floats(const std::string& bytes) {
  std::vector<float> values(bytes.size() / 2);
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t bits;
    std::memcpy(&bits, bytes.data() + 2 * i, 2);
    values[i] = FromBfloat16(bits);
  }
  return values;
}

std::vector<float> RoundedToBf16(const std::vector<float>& values) {
  return Bf16Floats(Bf16Bytes(values));
}

// BF16 on the wire: inputs in half the bytes, outputs in BF16 by default or
// in FP32 when an output's "datatype" parameter asks.
TEST_P(ServiceTest, Bfloat16TensorsOnTheWire) {
  constexpr int64_t kRows = 5;
  const std::vector<float> x = RandomValues(kRows * kIn, 70);
  const std::vector<float> grad_y = RandomValues(kRows * kOut, 71);
  ModelInferRequest request;
  request.set_model_name("linear_relu");
  for (const auto& [name, values, width] :
       {std::tuple{"x", &x, kIn}, std::tuple{"grad_y", &grad_y, kOut}}) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype("BF16");
    input->add_shape(kRows);
    input->add_shape(width);
    request.add_raw_input_contents(Bf16Bytes(*values));
  }
  for (const char* name : {"y", "grad_x", "grad_weight", "grad_bias"}) {
    request.add_outputs()->set_name(name);
  }
  (*request.mutable_outputs(1)->mutable_parameters())["datatype"]
      .set_string_param("FP32");
  ModelInferResponse response;
  const grpc::Status status = Infer(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();

  // What the bf16 kernels compute from: the inputs and weights rounded.
  LinearWeights rounded = weights_;
  rounded.weight = RoundedToBf16(weights_.weight);
  const std::vector<float> x_rounded = RoundedToBf16(x);
  const std::vector<float> grad_y_rounded = RoundedToBf16(grad_y);
  const ReferenceResult expected =
      NaiveLinearRelu(rounded, kRows, x_rounded.data(), grad_y_rounded.data());
  ASSERT_EQ(response.outputs_size(), 4);
  EXPECT_EQ(response.outputs(0).datatype(), "BF16");
  EXPECT_EQ(response.outputs(1).datatype(), "FP32");
  EXPECT_EQ(response.outputs(2).datatype(), "BF16");
  EXPECT_EQ(response.raw_output_contents(0).size(), kRows * kOut * 2);
  EXPECT_EQ(response.raw_output_contents(1).size(), kRows * kIn * 4);
  // BF16 outputs carry bfloat16's own rounding (8-bit mantissa, 2^-9).
  EXPECT_LE(
      RelativeError(Bf16Floats(response.raw_output_contents(0)), expected.y),
      4e-3);
  EXPECT_LE(
      RelativeError(Floats(response.raw_output_contents(1)), expected.grad_x),
      1e-5);
  EXPECT_LE(RelativeError(Bf16Floats(response.raw_output_contents(2)),
                          expected.grad_weight),
            4e-3);
  EXPECT_LE(RelativeError(Bf16Floats(response.raw_output_contents(3)),
                          expected.grad_bias),
            4e-3);
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

TEST_P(ServiceTest, StatisticsCountRequestsRowsAndPhases) {
  for (int64_t rows : {2, 3, 4}) {
    ModelInferResponse response;
    ASSERT_TRUE(Infer(Request(rows, false), &response).ok());
  }
  ModelInferRequest bad = Request(1, false);
  bad.mutable_inputs(0)->set_datatype("INT8");
  ModelInferResponse ignored;
  EXPECT_FALSE(Infer(bad, &ignored).ok());

  grpc::ClientContext context;
  inference::ModelStatisticsRequest request;
  request.set_name("linear_relu");
  inference::ModelStatisticsResponse response;
  ASSERT_TRUE(stub_->ModelStatistics(&context, request, &response).ok());
  ASSERT_EQ(response.model_stats_size(), 1);
  const inference::ModelStatistics& statistics = response.model_stats(0);
  EXPECT_EQ(statistics.name(), "linear_relu");
  EXPECT_EQ(statistics.version(), "1");
  EXPECT_EQ(statistics.inference_count(), 9u);
  EXPECT_GT(statistics.last_inference(), 0u);
  const inference::InferStatistics& phases = statistics.inference_stats();
  EXPECT_EQ(phases.success().count(), 3u);
  EXPECT_EQ(phases.fail().count(), 1u);
  for (const auto* phase :
       {&phases.queue(), &phases.compute_input(), &phases.compute_infer(),
        &phases.compute_output()}) {
    EXPECT_EQ(phase->count(), 3u);
  }
  EXPECT_GT(phases.compute_infer().ns(), 0u);
  EXPECT_GE(phases.success().ns(), phases.compute_infer().ns());
  // One call at a time: nothing to merge, one execution each.
  EXPECT_EQ(statistics.execution_count(), 3u);
  std::vector<uint64_t> sizes;
  for (const auto& batch : statistics.batch_stats()) {
    sizes.push_back(batch.batch_size());
    EXPECT_EQ(batch.compute_infer().count(), 1u);
  }
  EXPECT_EQ(sizes, (std::vector<uint64_t>{2, 3, 4}));

  grpc::ClientContext unknown_context;
  request.set_name("resnet50");
  EXPECT_EQ(
      stub_->ModelStatistics(&unknown_context, request, &response).error_code(),
      grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext all_context;
  request.set_name("");
  response.Clear();
  ASSERT_TRUE(stub_->ModelStatistics(&all_context, request, &response).ok());
  EXPECT_EQ(response.model_stats_size(), 1);
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

ModelConfig ModelOf(int64_t in, int64_t out, int64_t max_batch) {
  ModelConfig model;
  model.in_features = in;
  model.out_features = out;
  model.max_batch = max_batch;
  return model;
}

// The id that makes the reply to `request` exactly `bytes` long, as a
// unary response or in a stream's wrapper; empty if no id does.
std::string IdForReplyBytes(ModelInferRequest request, const ModelConfig& model,
                            int64_t bytes, bool streamed) {
  for (int64_t length = 0; length <= bytes; ++length) {
    request.set_id(std::string(length, 'i'));
    absl::StatusOr<ValidatedInferRequest> validated =
        ValidateInferRequest(request, model);
    if (!validated.ok()) return "";
    const int64_t reply = streamed
                              ? StreamResponseBytes(validated->response_bytes)
                              : validated->response_bytes;
    if (reply == bytes) return request.id();
    if (reply > bytes) return "";
    // Jump close to the answer: the id's length is what grows the reply.
    if (bytes - reply > 16) length += bytes - reply - 16;
  }
  return "";
}

// ValidateInferRequest knows the exact size of each reply before anything
// is computed: checked against the replies the service really sends.
TEST_P(ServiceTest, ReplySizeIsKnownExactlyBeforeCompute) {
  const ModelConfig model = ModelOf(kIn, kOut, 4096);
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
    absl::StatusOr<ValidatedInferRequest> validated =
        ValidateInferRequest(request, model);
    ASSERT_TRUE(validated.ok()) << name << ": " << validated.status();
    ModelInferResponse response;
    const grpc::Status status = Infer(request, &response);
    ASSERT_TRUE(status.ok()) << name << ": " << status.error_message();
    EXPECT_EQ(validated->response_bytes,
              static_cast<int64_t>(response.ByteSizeLong()))
        << name;
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
  const ModelConfig model = ModelOf(kIn, kOut, kMaxBatch);
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
  const ModelConfig model = ModelOf(kIn, kOut, kMaxBatch);
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

INSTANTIATE_TEST_SUITE_P(AllSchedulings, ServiceTest,
                         ::testing::Values(Inline(), ComputePool(),
                                           DynamicBatching()),
                         [](const auto& info) { return info.param.name; });

// A draining service reports not ready and turns inference calls away.
TEST(DrainingServiceTest, ReportsNotReadyAndRefusesInference) {
  LinearWeights weights = MakeDefaultWeights(kIn, kOut, 1);
  absl::StatusOr<std::unique_ptr<LinearRelu>> layer =
      LinearRelu::Create(weights);
  ASSERT_TRUE(layer.ok());
  ModelConfig model;
  model.in_features = kIn;
  model.out_features = kOut;
  InferenceService service(model, std::move(*layer), Scheduler::Options{});
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));

  service.StartDraining();
  {
    grpc::ClientContext context;
    inference::ServerReadyResponse response;
    ASSERT_TRUE(stub->ServerReady(&context, {}, &response).ok());
    EXPECT_FALSE(response.ready());
  }
  {
    grpc::ClientContext context;
    ModelInferRequest request;
    request.set_model_name("linear_relu");
    AddInput(request, "x", {1, kIn}, RandomValues(kIn, 1));
    ModelInferResponse response;
    const grpc::Status status = stub->ModelInfer(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  server->Shutdown();
}

// An InferenceService with its own limits on 127.0.0.1:<free port>, with
// the message limits Server would set.
struct LimitedServer {
  LimitedServer(int64_t in, int64_t out, const InferenceLimits& limits,
                const Scheduler::Options& scheduling = {}) {
    absl::StatusOr<std::unique_ptr<LinearRelu>> layer =
        LinearRelu::Create(MakeDefaultWeights(in, out, 1));
    if (!layer.ok()) throw std::runtime_error(layer.status().ToString());
    model = ModelOf(in, out, 4096);
    service = std::make_unique<InferenceService>(model, std::move(*layer),
                                                 scheduling, limits);
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
    AddInput(request, "x", {rows, model.in_features},
             RandomValues(rows * model.in_features, rows));
    AddInput(request, "grad_y", {rows, model.out_features},
             RandomValues(rows * model.out_features, rows + 1));
    return request;
  }

  ModelConfig model;
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
  // Every message answered by the service; most replies wait, unread.
  ASSERT_TRUE(WaitFor([&] {
    return limited.service->requests_in_flight() == 0 &&
           limited.service->pending_bytes() > 0;
  }));
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
