// Inference responses of the KServe v2 REST protocol without sockets:
// binary FP32 and BF16, flat and nested JSON, the words for non-finite
// values, and malformed responses.

#include "client/http_infer_response.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common/bfloat16.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/tensor_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::FloatBytes;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A response with y [2, 2] FP32 and grad_bias [3] BF16 in binary form.
std::string BinaryResponse(std::string* header_out = nullptr) {
  const std::string header =
      R"({"model_name":"m","model_version":"1","id":"9","outputs":[)"
      R"({"name":"y","datatype":"FP32","shape":[2,2],)"
      R"("parameters":{"binary_data_size":16}},)"
      R"({"name":"grad_bias","datatype":"BF16","shape":[3],)"
      R"("parameters":{"binary_data_size":6}}]})";
  std::string bf16;
  for (float value : {1.0f, -2.5f, 0.0f}) {
    const uint16_t half = ToBfloat16(value);
    bf16.append(reinterpret_cast<const char*>(&half), 2);
  }
  if (header_out != nullptr) *header_out = header;
  return header + FloatBytes({0, 1.5f, -3, 4}) + bf16;
}

TEST(DecodeHttpInferResponseTest, ReadsBinaryFp32AndBf16) {
  std::string header;
  const std::string body = BinaryResponse(&header);
  absl::StatusOr<InferResult> result =
      DecodeHttpInferResponse({body, header.size()});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->model_name, "m");
  EXPECT_EQ(result->model_version, "1");
  EXPECT_EQ(result->id, "9");
  ASSERT_EQ(result->outputs.size(), 2u);
  EXPECT_EQ(result->outputs[0].name, "y");
  EXPECT_THAT(result->outputs[0].tensor.shape, ElementsAre(2, 2));
  EXPECT_THAT(result->outputs[0].tensor.data, ElementsAre(0, 1.5f, -3, 4));
  ASSERT_NE(result->Find("grad_bias"), nullptr);
  EXPECT_THAT(result->Find("grad_bias")->data, ElementsAre(1.0f, -2.5f, 0));

  absl::StatusOr<HttpInferSummary> summary =
      SummarizeHttpInferResponse({body, header.size()});
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->id, "9");
  EXPECT_EQ(summary->outputs, 2);
  EXPECT_EQ(summary->binary_bytes, 22);
}

TEST(DecodeHttpInferResponseTest, ReadsFlatAndNestedJson) {
  for (const char* data :
       {"[1, 2.5, -3, 0, null, 6]", "[[1, 2.5, -3], [0, null, 6]]",
        "[[[1], [2.5], [-3]], [[0], [null], [6]]]"}) {
    const std::string body = std::string(R"({"outputs":[{"name":"y",)") +
                             R"("datatype":"FP32","shape":[2,3],"data":)" +
                             data + "}]}";
    absl::StatusOr<InferResult> result =
        DecodeHttpInferResponse({body, std::nullopt});
    ASSERT_TRUE(result.ok()) << data << ": " << result.status();
    const std::vector<float>& values = result->outputs[0].tensor.data;
    ASSERT_EQ(values.size(), 6u) << data;
    EXPECT_EQ(values[1], 2.5f);
    EXPECT_TRUE(std::isnan(values[4])) << "null reads as NaN";
    EXPECT_EQ(values[5], 6);
    EXPECT_TRUE(result->id.empty());
  }
}

TEST(DecodeHttpInferResponseTest, ReadsTheWordsForNonFiniteValues) {
  // As ReluServe and Python's json write them; inside strings they stay.
  const std::string body =
      R"({"id":"NaN Infinity","outputs":[{"name":"y","datatype":"FP32",)"
      R"("shape":[5],"data":[NaN,Infinity,-Infinity,-1.5,"NaN"]}]})";
  absl::StatusOr<InferResult> result =
      DecodeHttpInferResponse({body, std::nullopt});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->id, "NaN Infinity");
  const std::vector<float>& values = result->outputs[0].tensor.data;
  ASSERT_EQ(values.size(), 5u);
  EXPECT_TRUE(std::isnan(values[0]));
  EXPECT_EQ(values[1], std::numeric_limits<float>::infinity());
  EXPECT_EQ(values[2], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(values[3], -1.5f);
  EXPECT_TRUE(std::isnan(values[4]));
}

TEST(DecodeHttpInferResponseTest, MixesJsonAndBinaryOutputs) {
  const std::string header =
      R"({"outputs":[{"name":"a","datatype":"FP32","shape":[1],"data":[7]},)"
      R"({"name":"b","datatype":"FP32","shape":[1],)"
      R"("parameters":{"binary_data_size":4}}]})";
  absl::StatusOr<InferResult> result =
      DecodeHttpInferResponse({header + FloatBytes({8}), header.size()});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_THAT(result->Find("a")->data, ElementsAre(7));
  EXPECT_THAT(result->Find("b")->data, ElementsAre(8));
}

TEST(DecodeHttpInferResponseTest, MalformedResponsesAreInternalErrors) {
  std::string header;
  const std::string body = BinaryResponse(&header);
  const std::string y_json =
      R"({"outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":)";
  struct Case {
    std::string body;
    std::optional<size_t> header_length;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"not json", std::nullopt, "no JSON object"},
      {"[1, 2]", std::nullopt, "no JSON object"},
      {body, body.size() + 1, "only"},
      {body.substr(0, body.size() - 1), header.size(), "bytes left"},
      {body + "x", header.size(), "1 bytes after the last output"},
      // The JSON ends where the binary's first zero byte is read.
      {body, std::nullopt, "0 bytes left"},
      {y_json + "[1, 2, 3]}]}", std::nullopt, "shape [2] but 3 values"},
      {y_json + "[1, \"2\"]}]}", std::nullopt, "data holds \"2\""},
      {R"({"outputs":[{"name":"y","datatype":"BF16","shape":[1],)"
       R"("data":[1]}]})",
       std::nullopt, "only FP32 travels as numbers"},
      {R"({"outputs":[{"name":"y","datatype":"INT8","shape":[1],)"
       R"("data":[1]}]})",
       std::nullopt, "expected FP32 or BF16"},
      {R"({"outputs":[{"name":"y","shape":[1],"data":[1]}]})", std::nullopt,
       "lacks its name, datatype or shape"},
      {R"({"outputs":[{"name":"y","datatype":"FP32","shape":[-1],)"
       R"("data":[1]}]})",
       std::nullopt, "output y"},
      {R"({"outputs":[{"name":"y","datatype":"FP32","shape":[1]}]})",
       std::nullopt, "neither data nor binary_data_size"},
      {R"({"outputs":{"name":"y"}})", std::nullopt, "outputs is no array"},
  };
  for (const Case& c : cases) {
    const HttpInferResponseBytes response = {c.body, c.header_length};
    absl::StatusOr<InferResult> result = DecodeHttpInferResponse(response);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal) << c.body;
    EXPECT_THAT(result.status().message(), HasSubstr("malformed response"));
    EXPECT_THAT(result.status().message(), HasSubstr(c.problem)) << c.body;
    EXPECT_EQ(SummarizeHttpInferResponse(response).status(), result.status());
  }
}

TEST(DecodeHttpInferResponseTest, NoOutputsIsAnEmptyResult) {
  absl::StatusOr<InferResult> result =
      DecodeHttpInferResponse({R"({"model_name":"m"})", std::nullopt});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->outputs.empty());
}

}  // namespace
}  // namespace reluserve
