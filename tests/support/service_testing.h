#ifndef RELUSERVE_TESTS_SUPPORT_SERVICE_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_SERVICE_TESTING_H_

// Shared by the service tests: tensors on the wire, the schedulings every
// service test runs in, and ServiceTest, a Server on 127.0.0.1:<free port>
// in this process called through the generated stub over a real socket.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "grpc_service.grpc.pb.h"
#include "server/core/precision.h"
#include "server/core/weights.h"
#include "server/service/server.h"
#include "tests/support/model_testing.h"
#include "tests/support/tensor_testing.h"

namespace reluserve::testing {

inline constexpr int64_t kIn = 37, kOut = 13;

inline std::string Bytes(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()),
                     values.size() * sizeof(float));
}

inline std::vector<float> Floats(const std::string& bytes) {
  std::vector<float> values(bytes.size() / sizeof(float));
  std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
  return values;
}

inline void AddInput(inference::ModelInferRequest& request,
                     const std::string& name, std::vector<int64_t> shape,
                     const std::vector<float>& values) {
  auto* input = request.add_inputs();
  input->set_name(name);
  input->set_datatype("FP32");
  for (int64_t dim : shape) input->add_shape(dim);
  request.add_raw_input_contents(Bytes(values));
}

inline std::string Bf16Bytes(const std::vector<float>& values) {
  std::vector<uint16_t> rounded(values.size());
  ToBfloat16(values.data(), rounded.data(), values.size());
  return std::string(reinterpret_cast<const char*>(rounded.data()),
                     rounded.size() * sizeof(uint16_t));
}

inline std::vector<float> Bf16Floats(const std::string& bytes) {
  std::vector<float> values(bytes.size() / 2);
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t bits;
    std::memcpy(&bits, bytes.data() + 2 * i, 2);
    values[i] = FromBfloat16(bits);
  }
  return values;
}

inline std::vector<float> RoundedToBf16(const std::vector<float>& values) {
  return Bf16Floats(Bf16Bytes(values));
}

// How the server runs its computations; every service test runs in each.
struct Scheduling {
  std::string name;
  Scheduler::Options options;
};

inline Scheduling Inline() { return {"Inline", {}}; }

inline Scheduling ComputePool() {
  Scheduling pool{"ComputePool", {}};
  pool.options.compute_threads = 2;
  return pool;
}

inline Scheduling DynamicBatching() {
  Scheduling batching{"DynamicBatching", {}};
  batching.options.compute_threads = 2;
  batching.options.max_batch_delay = std::chrono::milliseconds(2);
  batching.options.preferred_batch_rows = 64;
  return batching;
}

// For each file of ServiceTest cases:
//   INSTANTIATE_TEST_SUITE_P(AllSchedulings, ServiceTest, Schedulings(),
//                            SchedulingName);
inline auto Schedulings() {
  return ::testing::Values(Inline(), ComputePool(), DynamicBatching());
}

inline std::string SchedulingName(
    const ::testing::TestParamInfo<Scheduling>& info) {
  return info.param.name;
}

class ServiceTest : public ::testing::TestWithParam<Scheduling> {
 protected:
  void StartServer(int64_t in_features, int64_t out_features,
                   int64_t max_batch = 4096) {
    LinearWeights weights = MakeDefaultWeights(in_features, out_features, 5);
    weights.bias = RandomValues(out_features, 6);
    StartServer(std::move(weights), [max_batch](Server::Options& options) {
      options.model.max_batch = max_batch;
      options.scheduling.max_batch_rows = max_batch;
    });
  }

  // `configure` may change the options before the server starts.
  void StartServer(LinearWeights weights,
                   const std::function<void(Server::Options&)>& configure) {
    weights_ = std::move(weights);
    Server::Options options;
    options.host = "127.0.0.1";
    options.port = 0;
    options.model.max_batch = 4096;
    options.scheduling = GetParam().options;
    options.scheduling.max_batch_rows = 4096;
    if (configure) configure(options);
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Start(options, SingleLayerModel(weights_));
    if (!server.ok()) throw std::runtime_error(server.status().ToString());
    server_ = std::move(*server);
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(INT_MAX);
    args.SetMaxSendMessageSize(INT_MAX);
    stub_ = inference::GRPCInferenceService::NewStub(grpc::CreateCustomChannel(
        server_->address(), grpc::InsecureChannelCredentials(), args));
  }

  void SetUp() override { StartServer(kIn, kOut); }

  grpc::Status Infer(const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(20));
    return stub_->ModelInfer(&context, request, response);
  }

  inference::ModelInferRequest Request(int64_t batch, bool with_grad_y) {
    inference::ModelInferRequest request;
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
    inference::ModelInferResponse response;
    const grpc::Status status = Infer(Request(2, true), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.outputs_size(), 4);
  }

  LinearWeights weights_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  std::vector<float> x_, grad_y_;
};

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_SERVICE_TESTING_H_
