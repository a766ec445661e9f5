// The REST front end over real HTTP/1.1 on loopback: a Server with its
// HTTP port on, called with cpp-httplib's client in JSON and with the
// binary tensor extension; numbers against the naive double-precision
// reference (fp32 relative error <= 1e-5).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common/bfloat16.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/core/weights.h"
#include "server/service/server.h"
#include "tests/support/http_testing.h"
#include "tests/support/model_testing.h"
#include "tests/support/naive_reference.h"
#include "tests/support/tensor_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::BinaryBody;
using ::reluserve::testing::FloatBytes;
using ::reluserve::testing::HttpBody;
using ::reluserve::testing::HttpInput;
using ::reluserve::testing::JsonBody;
using ::reluserve::testing::RandomValues;
using ::reluserve::testing::RelativeError;
using ::reluserve::testing::SplitReply;
using json = nlohmann::json;

constexpr int64_t kIn = 37, kOut = 13;
constexpr char kInfer[] = "/v2/models/linear_relu/infer";

class HttpFrontEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    weights_ = MakeDefaultWeights(kIn, kOut, 5);
    weights_.bias = RandomValues(kOut, 6);
    Server::Options options;
    options.port = 0;
    options.http_port = 0;
    options.model.max_batch = 4096;
    options.scheduling.max_batch_rows = 4096;
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Start(options, testing::SingleLayerModel(weights_));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->http_port(), 0);
    client_ =
        std::make_unique<httplib::Client>("127.0.0.1", server_->http_port());
    client_->set_read_timeout(20, 0);
  }

  // x [batch, kIn] and, if asked, grad_y [batch, kOut].
  std::vector<HttpInput> Inputs(int64_t batch, bool with_grad_y) {
    x_ = RandomValues(batch * kIn, 100 + batch);
    std::vector<HttpInput> inputs{{"x", {batch, kIn}, FloatBytes(x_)}};
    if (with_grad_y) {
      grad_y_ = RandomValues(batch * kOut, 200 + batch);
      inputs.push_back({"grad_y", {batch, kOut}, FloatBytes(grad_y_)});
    }
    return inputs;
  }

  httplib::Result Post(const HttpBody& body) {
    return client_->Post(
        kInfer, body.headers, body.body,
        body.headers.empty() ? "application/json" : "application/octet-stream");
  }

  void ExpectMatchesReference(const testing::HttpReplyParts& reply,
                              int64_t batch, bool backward) {
    const ReferenceResult expected = NaiveLinearRelu(
        weights_, batch, x_.data(), backward ? grad_y_.data() : nullptr);
    EXPECT_LE(RelativeError(reply.values.at("y"), expected.y), 1e-5);
    if (!backward) return;
    EXPECT_LE(RelativeError(reply.values.at("grad_x"), expected.grad_x), 1e-5);
    EXPECT_LE(
        RelativeError(reply.values.at("grad_weight"), expected.grad_weight),
        1e-5);
    EXPECT_LE(RelativeError(reply.values.at("grad_bias"), expected.grad_bias),
              1e-5);
  }

  LinearWeights weights_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
  std::vector<float> x_, grad_y_;
};

TEST_F(HttpFrontEndTest, BinaryForwardBackwardMatchesTheReference) {
  for (int64_t batch : {1, 100}) {
    const HttpBody body = BinaryBody(
        {{"id", "req-7"}, {"parameters", {{"binary_data_output", true}}}},
        Inputs(batch, true));
    const httplib::Result result = Post(body);
    ASSERT_TRUE(result) << httplib::to_string(result.error());
    ASSERT_EQ(result->status, 200) << result->body;
    EXPECT_EQ(result->get_header_value("Content-Type"),
              "application/octet-stream");
    const testing::HttpReplyParts reply = SplitReply(result);
    EXPECT_EQ(reply.header["model_name"], "linear_relu");
    EXPECT_EQ(reply.header["model_version"], "1");
    EXPECT_EQ(reply.header["id"], "req-7");
    ASSERT_EQ(reply.header["outputs"].size(), 4u);
    EXPECT_EQ(reply.header["outputs"][0]["name"], "y");
    EXPECT_EQ(reply.header["outputs"][0]["shape"], json({batch, kOut}));
    EXPECT_EQ(reply.header["outputs"][1]["name"], "grad_x");
    EXPECT_EQ(reply.header["outputs"][2]["name"], "grad_weight");
    EXPECT_EQ(reply.header["outputs"][2]["shape"], json({kOut, kIn}));
    EXPECT_EQ(reply.header["outputs"][3]["name"], "grad_bias");
    ExpectMatchesReference(reply, batch, true);
  }
}

TEST_F(HttpFrontEndTest, JsonFlatAndNestedGiveTheBinaryNumbers) {
  const std::vector<HttpInput> inputs = Inputs(3, true);
  const testing::HttpReplyParts binary = SplitReply(Post(
      BinaryBody({{"parameters", {{"binary_data_output", true}}}}, inputs)));
  ASSERT_EQ(binary.status, 200);
  const testing::HttpReplyParts flat = SplitReply(Post(JsonBody({}, inputs)));
  ASSERT_EQ(flat.status, 200);
  EXPECT_FALSE(flat.header["outputs"][0].contains("parameters"));
  json nested = json::parse(JsonBody({}, inputs).body);
  for (json& input : nested["inputs"]) {
    const int64_t rows = input["shape"][0];
    const size_t columns = input["data"].size() / static_cast<size_t>(rows);
    json matrix = json::array();
    for (int64_t r = 0; r < rows; ++r) {
      matrix.push_back(json::array());
      for (size_t c = 0; c < columns; ++c) {
        matrix.back().push_back(input["data"][r * columns + c]);
      }
    }
    input["data"] = matrix;
  }
  const testing::HttpReplyParts from_nested =
      SplitReply(Post({nested.dump(), {}}));
  ASSERT_EQ(from_nested.status, 200);
  // The shortest text that reads back to each float: the same floats.
  for (const char* name : {"y", "grad_x", "grad_weight", "grad_bias"}) {
    EXPECT_EQ(flat.values.at(name), binary.values.at(name)) << name;
    EXPECT_EQ(from_nested.values.at(name), binary.values.at(name)) << name;
  }
  ExpectMatchesReference(flat, 3, true);
}

TEST_F(HttpFrontEndTest, OutputsComeAsAskedInOrderBinaryOrJson) {
  const testing::HttpReplyParts reply = SplitReply(Post(BinaryBody(
      {{"outputs",
        {{{"name", "grad_bias"}, {"parameters", {{"binary_data", true}}}},
         {{"name", "y"}}}}},
      Inputs(2, true))));
  ASSERT_EQ(reply.status, 200);
  ASSERT_EQ(reply.header["outputs"].size(), 2u);
  EXPECT_EQ(reply.header["outputs"][0]["name"], "grad_bias");
  EXPECT_EQ(reply.header["outputs"][0]["parameters"]["binary_data_size"],
            kOut * 4);
  EXPECT_EQ(reply.header["outputs"][1]["name"], "y");
  EXPECT_TRUE(reply.header["outputs"][1].contains("data"));
  const ReferenceResult expected =
      NaiveLinearRelu(weights_, 2, x_.data(), grad_y_.data());
  EXPECT_LE(RelativeError(reply.values.at("grad_bias"), expected.grad_bias),
            1e-5);
  EXPECT_LE(RelativeError(reply.values.at("y"), expected.y), 1e-5);
}

TEST_F(HttpFrontEndTest, Bfloat16OnlyAsBinary) {
  std::vector<HttpInput> inputs = Inputs(2, false);
  std::vector<uint16_t> bf16(x_.size());
  ToBfloat16(x_.data(), bf16.data(), x_.size());
  inputs[0].datatype = "BF16";
  inputs[0].bytes.assign(reinterpret_cast<const char*>(bf16.data()),
                         bf16.size() * 2);
  const json bf16_y = {
      {"outputs",
       {{{"name", "y"},
         {"parameters", {{"binary_data", true}, {"datatype", "BF16"}}}}}}};
  const testing::HttpReplyParts reply =
      SplitReply(Post(BinaryBody(bf16_y, inputs)));
  ASSERT_EQ(reply.status, 200) << reply.header.dump();
  EXPECT_EQ(reply.header["outputs"][0]["datatype"], "BF16");
  EXPECT_EQ(reply.binary.at("y").size(), 2u * kOut * 2);

  HttpBody json_bf16 = JsonBody({}, Inputs(2, false));
  json refused = json::parse(json_bf16.body);
  refused["inputs"][0]["datatype"] = "BF16";
  const httplib::Result in_json = Post({refused.dump(), {}});
  ASSERT_TRUE(in_json);
  EXPECT_EQ(in_json->status, 400);
  EXPECT_NE(in_json->body.find("only as binary data"), std::string::npos)
      << in_json->body;

  const json bf16_y_in_json = {
      {"outputs", {{{"name", "y"}, {"parameters", {{"datatype", "BF16"}}}}}}};
  const httplib::Result out_json =
      Post(BinaryBody(bf16_y_in_json, Inputs(2, false)));
  ASSERT_TRUE(out_json);
  EXPECT_EQ(out_json->status, 400);
  EXPECT_NE(out_json->body.find("'y'"), std::string::npos) << out_json->body;
  EXPECT_NE(out_json->body.find("binary_data"), std::string::npos);
}

TEST_F(HttpFrontEndTest, HealthMetadataConfigStatisticsAndIndex) {
  EXPECT_EQ(client_->Get("/v2/health/live")->status, 200);
  EXPECT_EQ(client_->Get("/v2/health/ready")->status, 200);
  EXPECT_EQ(client_->Get("/v2/models/linear_relu/ready")->status, 200);
  EXPECT_EQ(client_->Get("/v2/models/linear_relu/versions/1/ready")->status,
            200);
  EXPECT_EQ(client_->Get("/v2/models/resnet/ready")->status, 404);

  const json server = json::parse(client_->Get("/v2")->body);
  EXPECT_EQ(server["name"], "reluserve");
  EXPECT_NE(std::find(server["extensions"].begin(), server["extensions"].end(),
                      "binary_tensor_data"),
            server["extensions"].end());

  const json metadata =
      json::parse(client_->Get("/v2/models/linear_relu")->body);
  EXPECT_EQ(metadata["name"], "linear_relu");
  EXPECT_EQ(metadata["versions"], json({"1"}));
  EXPECT_EQ(metadata["inputs"][0]["name"], "x");
  EXPECT_EQ(metadata["inputs"][0]["shape"], json({-1, kIn}));
  EXPECT_EQ(metadata["outputs"][0]["shape"], json({-1, kOut}));

  const json config =
      json::parse(client_->Get("/v2/models/linear_relu/config")->body);
  EXPECT_EQ(config["max_batch_size"], 4096);  // a number, not "4096"
  EXPECT_EQ(config["input"][0]["data_type"], "TYPE_FP32");
  EXPECT_EQ(config["input"][0]["dims"], json({kIn}));
  EXPECT_EQ(config["input"][1]["optional"], true);

  ASSERT_EQ(Post(BinaryBody({}, Inputs(4, false)))->status, 200);
  const json stats =
      json::parse(client_->Get("/v2/models/linear_relu/stats")->body);
  ASSERT_EQ(stats["model_stats"].size(), 1u);
  EXPECT_EQ(stats["model_stats"][0]["inference_count"], 4);
  EXPECT_EQ(stats["model_stats"][0]["inference_stats"]["success"]["count"], 1);
  EXPECT_EQ(
      json::parse(client_->Get("/v2/models/stats")->body)["model_stats"].size(),
      1u);
  EXPECT_EQ(client_->Get("/v2/models/resnet/stats")->status, 404);

  const httplib::Result index = client_->Post("/v2/repository/index", "", "");
  ASSERT_EQ(index->status, 200);
  const json models = json::parse(index->body);
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0]["name"], "linear_relu");
  EXPECT_EQ(models[0]["state"], "READY");

  const httplib::Result unknown = client_->Get("/v2/nothing");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_NE(unknown->body.find("\"error\""), std::string::npos);
}

}  // namespace
}  // namespace reluserve
