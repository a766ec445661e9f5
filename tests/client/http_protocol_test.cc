// The KServe v2 REST bytes without sockets: request encoding (binary and
// JSON), HTTP statuses and error bodies, JSON answers into gRPC messages.

#include "client/http_protocol.h"

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/tensor_testing.h"

namespace reluserve {
namespace {

using json = nlohmann::json;
using ::reluserve::testing::FloatBytes;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// x [2, 3] and grad_y [2, 1] as raw FP32, asking for y and grad_x.
inference::ModelInferRequest TwoInputs() {
  inference::ModelInferRequest request;
  request.set_model_name("linear_relu");
  request.set_model_version("2");
  auto add = [&request](const char* name, std::vector<int64_t> shape,
                        std::vector<float> values) {
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype("FP32");
    for (int64_t dim : shape) input->add_shape(dim);
    request.add_raw_input_contents(FloatBytes(values));
  };
  add("x", {2, 3}, {1, -2, 3.5f, 0.1f, 5, -6});
  add("grad_y", {2, 1}, {0.25f, -1});
  request.add_outputs()->set_name("y");
  request.add_outputs()->set_name("grad_x");
  return request;
}

TEST(HttpModelPathTest, EncodesNamesAndAddsTheVersion) {
  EXPECT_EQ(HttpModelPath("linear_relu", ""), "/v2/models/linear_relu");
  EXPECT_EQ(HttpModelPath("linear_relu", "3"),
            "/v2/models/linear_relu/versions/3");
  EXPECT_EQ(HttpModelPath("a b/c?", "1"), "/v2/models/a%20b%2Fc%3F/versions/1");
}

TEST(EncodeHttpInferRequestTest, BinaryFormPutsTheBytesAfterTheHeader) {
  inference::ModelInferRequest request = TwoInputs();
  request.mutable_outputs(1)
      ->mutable_parameters()
      ->
      operator[]("datatype")
      .set_string_param("BF16");
  absl::StatusOr<HttpInferRequest> encoded =
      EncodeHttpInferRequest(request, HttpTensors::kBinary);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_EQ(encoded->path, "/v2/models/linear_relu/versions/2/infer");
  EXPECT_TRUE(encoded->binary_form);
  EXPECT_STREQ(encoded->content_type(), "application/octet-stream");
  EXPECT_EQ(encoded->binary,
            request.raw_input_contents(0) + request.raw_input_contents(1));
  const json header = json::parse(encoded->json);
  EXPECT_FALSE(header.contains("id"));
  ASSERT_EQ(header["inputs"].size(), 2u);
  EXPECT_EQ(header["inputs"][0],
            json::parse(R"({"name":"x","datatype":"FP32","shape":[2,3],
                            "parameters":{"binary_data_size":24}})"));
  EXPECT_EQ(header["inputs"][1]["parameters"]["binary_data_size"], 8);
  EXPECT_EQ(header["outputs"],
            json::parse(R"([{"name":"y","parameters":{"binary_data":true}},
                            {"name":"grad_x","parameters":
                              {"binary_data":true,"datatype":"BF16"}}])"));
  EXPECT_FALSE(header.contains("parameters"));
}

TEST(EncodeHttpInferRequestTest, DefaultOutputsComeBinaryToo) {
  inference::ModelInferRequest request = TwoInputs();
  request.clear_outputs();
  absl::StatusOr<HttpInferRequest> encoded =
      EncodeHttpInferRequest(request, HttpTensors::kBinary);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  const json header = json::parse(encoded->json);
  EXPECT_FALSE(header.contains("outputs"));
  EXPECT_EQ(header["parameters"],
            json::parse(R"({"binary_data_output":true})"));
}

TEST(EncodeHttpInferRequestTest, HeaderWithIdPutsTheIdFirst) {
  absl::StatusOr<HttpInferRequest> encoded =
      EncodeHttpInferRequest(TwoInputs(), HttpTensors::kBinary);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_EQ(encoded->HeaderWithId(""), encoded->json);
  const std::string with_id = encoded->HeaderWithId("req \"7\"");
  EXPECT_EQ(with_id.rfind(R"({"id":"req \"7\"",)", 0), 0u) << with_id;
  json expected = json::parse(encoded->json);
  expected["id"] = "req \"7\"";
  EXPECT_EQ(json::parse(with_id), expected);
}

TEST(EncodeHttpInferRequestTest, JsonFormCarriesFlatValues) {
  inference::ModelInferRequest request = TwoInputs();
  request.set_id("abc");
  absl::StatusOr<HttpInferRequest> encoded =
      EncodeHttpInferRequest(request, HttpTensors::kJson);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_FALSE(encoded->binary_form);
  EXPECT_TRUE(encoded->binary.empty());
  EXPECT_STREQ(encoded->content_type(), "application/json");
  EXPECT_EQ(encoded->id, "abc");
  const json header = json::parse(encoded->HeaderWithId(encoded->id));
  EXPECT_EQ(header["id"], "abc");
  const json& x = header["inputs"][0];
  EXPECT_FALSE(x.contains("parameters"));
  std::vector<float> values;
  for (const json& value : x["data"]) values.push_back(value.get<float>());
  // Every FP32 value comes back to the bit.
  EXPECT_THAT(values, ElementsAre(1, -2, 3.5f, 0.1f, 5, -6));
  EXPECT_EQ(header["outputs"],
            json::parse(R"([{"name":"y"},{"name":"grad_x"}])"));
  EXPECT_FALSE(header.contains("parameters"));
}

TEST(EncodeHttpInferRequestTest, TypedContentsAreEncodedLikeRawOnes) {
  inference::ModelInferRequest request;
  request.set_model_name("m");
  auto* x = request.add_inputs();
  x->set_name("x");
  x->set_datatype("FP32");
  x->add_shape(1);
  x->add_shape(2);
  x->mutable_contents()->add_fp32_contents(1.5f);
  x->mutable_contents()->add_fp32_contents(-2);
  absl::StatusOr<HttpInferRequest> encoded =
      EncodeHttpInferRequest(request, HttpTensors::kBinary);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  EXPECT_EQ(encoded->binary, FloatBytes({1.5f, -2}));
}

TEST(EncodeHttpInferRequestTest, Bf16TravelsOnlyAsBinary) {
  inference::ModelInferRequest request = TwoInputs();
  for (int i = 0; i < 2; ++i) {
    request.mutable_inputs(i)->set_datatype("BF16");
    std::string& raw = *request.mutable_raw_input_contents(i);
    raw.resize(raw.size() / 2);
  }
  absl::StatusOr<HttpInferRequest> binary =
      EncodeHttpInferRequest(request, HttpTensors::kBinary);
  ASSERT_TRUE(binary.ok()) << binary.status();
  EXPECT_EQ(
      json::parse(binary->json)["inputs"][0]["parameters"]["binary_data_size"],
      12);
  absl::StatusOr<HttpInferRequest> as_json =
      EncodeHttpInferRequest(request, HttpTensors::kJson);
  EXPECT_EQ(as_json.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(as_json.status().message(), HasSubstr("BF16"));
}

TEST(EncodeHttpInferRequestTest, RefusesWhatTheWireCannotSay) {
  inference::ModelInferRequest short_data = TwoInputs();
  short_data.mutable_raw_input_contents(0)->resize(20);
  EXPECT_THAT(EncodeHttpInferRequest(short_data, HttpTensors::kBinary)
                  .status()
                  .message(),
              HasSubstr("x: shape [2, 3] needs 24 bytes of FP32"));

  inference::ModelInferRequest missing = TwoInputs();
  missing.mutable_raw_input_contents()->RemoveLast();
  EXPECT_EQ(
      EncodeHttpInferRequest(missing, HttpTensors::kBinary).status().code(),
      absl::StatusCode::kInvalidArgument);

  inference::ModelInferRequest int8 = TwoInputs();
  int8.mutable_inputs(0)->set_datatype("INT8");
  EXPECT_THAT(
      EncodeHttpInferRequest(int8, HttpTensors::kBinary).status().message(),
      HasSubstr("FP32 and BF16 only"));

  for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    inference::ModelInferRequest non_finite = TwoInputs();
    std::memcpy(non_finite.mutable_raw_input_contents(0)->data(), &bad, 4);
    EXPECT_THAT(EncodeHttpInferRequest(non_finite, HttpTensors::kJson)
                    .status()
                    .message(),
                HasSubstr("NaN or Inf"));
    EXPECT_TRUE(EncodeHttpInferRequest(non_finite, HttpTensors::kBinary).ok());
  }
}

TEST(HttpStatusCodeTest, MapsLikeTheGrpcCodes) {
  EXPECT_EQ(HttpStatusCode(200), absl::StatusCode::kOk);
  EXPECT_EQ(HttpStatusCode(400), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpStatusCode(401), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(HttpStatusCode(403), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(HttpStatusCode(404), absl::StatusCode::kNotFound);
  EXPECT_EQ(HttpStatusCode(413), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(HttpStatusCode(500), absl::StatusCode::kInternal);
  EXPECT_EQ(HttpStatusCode(501), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(HttpStatusCode(503), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusCode(504), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(HttpStatusCode(418), absl::StatusCode::kUnknown);
  EXPECT_EQ(HttpStatusCode(302), absl::StatusCode::kUnknown);
}

TEST(HttpErrorTest, CarriesTheServersMessage) {
  EXPECT_TRUE(HttpError(200, "anything").ok());
  EXPECT_EQ(HttpError(400, R"({"error":"input 'x': expected FP32"})"),
            absl::InvalidArgumentError("input 'x': expected FP32"));
  EXPECT_EQ(HttpError(503, ""), absl::UnavailableError("HTTP 503"));
  EXPECT_EQ(HttpError(502, "  Bad Gateway\n"),
            absl::UnknownError("HTTP 502: Bad Gateway"));
  EXPECT_EQ(HttpError(404, R"({"message":"x"})"),
            absl::NotFoundError(R"(HTTP 404: {"message":"x"})"));
  const absl::Status long_body = HttpError(500, std::string(2000, 'a'));
  EXPECT_EQ(long_body.code(), absl::StatusCode::kInternal);
  EXPECT_LT(long_body.message().size(), 520u);
}

TEST(ParseJsonMessageTest, ReadsMetadataAndConfig) {
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(ParseJsonMessage(
                  R"({"name":"linear_relu","versions":["1","2"],
                      "platform":"reluserve","extra":{"ignored":true},
                      "inputs":[{"name":"x","datatype":"FP32",
                                 "shape":[-1,3072]}],
                      "outputs":[{"name":"y","datatype":"FP32",
                                  "shape":[-1,64]}]})",
                  metadata)
                  .ok());
  EXPECT_EQ(metadata.name(), "linear_relu");
  EXPECT_THAT(metadata.versions(), ElementsAre("1", "2"));
  EXPECT_THAT(metadata.inputs(0).shape(), ElementsAre(-1, 3072));

  inference::ModelConfig config;
  const absl::Status parsed = ParseJsonMessage(
      R"({"name":"linear_relu","max_batch_size":1024,"backend":"reluserve",
          "input":[{"name":"grad_y","data_type":"TYPE_FP32","dims":[64],
                    "optional":true}],
          "dynamic_batching":{"max_queue_delay_microseconds":"100"}})",
      config);
  ASSERT_TRUE(parsed.ok()) << parsed;
  EXPECT_EQ(config.max_batch_size(), 1024);
  EXPECT_TRUE(config.input(0).optional());
  EXPECT_EQ(config.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_THAT(config.input(0).dims(), ElementsAre(64));
}

TEST(ParseJsonMessageTest, MalformedJsonIsAnInternalError) {
  inference::ServerMetadataResponse metadata;
  const absl::Status status =
      ParseJsonMessage(R"({"name": 3, "version": )", metadata);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("ServerMetadataResponse"));
}

}  // namespace
}  // namespace reluserve
