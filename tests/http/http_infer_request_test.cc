// The REST request parser alone: the JSON header and binary section to the
// runtime's neutral request, with views rather than copies.
#include "server/http/http_infer_request.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "server/http/request_body.h"

namespace reluserve {
namespace {

// The parser reads up to 64 bytes past the header: hand it a body.
absl::StatusOr<HttpInferRequest> Parse(const std::string& header,
                                       const std::string& binary = "") {
  static std::vector<std::unique_ptr<RequestBody>> bodies;
  auto body = std::make_unique<RequestBody>(header.size() + binary.size(),
                                            header.size());
  body->Append(header.data(), header.size());
  body->Append(binary.data(), binary.size());
  absl::StatusOr<HttpInferRequest> parsed = ParseHttpInferRequest(
      body->header(), body->binary(), body->binary_bytes());
  bodies.push_back(std::move(body));  // the views outlive the call
  return parsed;
}

TEST(HttpInferRequestTest, BinaryInputsViewTheAlignedBinarySection) {
  std::string binary(12 + 8, '\0');
  const float x[3] = {1.5f, -2.0f, 3.25f};
  std::memcpy(binary.data(), x, sizeof(x));
  const std::string header =
      R"({"id":"a","inputs":[{"name":"x","datatype":"FP32","shape":[1,3],)"
      R"("parameters":{"binary_data_size":12}},{"name":"g","datatype":"FP32",)"
      R"("shape":[1,2],"parameters":{"binary_data_size":8}}],)"
      R"("outputs":[{"name":"y","parameters":{"binary_data":true}},)"
      R"({"name":"z","parameters":{"datatype":"BF16"}}]})";
  absl::StatusOr<HttpInferRequest> parsed = Parse(header, binary);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->id, "a");
  ASSERT_EQ(parsed->request.inputs.size(), 2u);
  const InferenceRequest::Input& in = parsed->request.inputs[0];
  EXPECT_EQ(in.name, "x");
  EXPECT_EQ(in.shape, (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(in.byte_size, 12);
  EXPECT_FALSE(in.counted_in_values);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(in.data) % RequestBody::kAlignment, 0u);
  EXPECT_EQ(std::memcmp(in.data, x, sizeof(x)), 0);
  EXPECT_EQ(static_cast<const char*>(parsed->request.inputs[1].data),
            static_cast<const char*>(in.data) + 12);
  ASSERT_EQ(parsed->request.outputs.size(), 2u);
  EXPECT_TRUE(parsed->BinaryOutput(0));
  EXPECT_FALSE(parsed->BinaryOutput(1));
  EXPECT_EQ(parsed->request.outputs[1].datatype, "BF16");
  EXPECT_TRUE(parsed->request.outputs[1].datatype_given);
  EXPECT_FALSE(parsed->request.outputs[0].datatype_given);
}

TEST(HttpInferRequestTest, JsonDataFlatOrNestedIsRowMajorValues) {
  for (const char* data : {"[1, 2.5, -3, 4e1]", "[[1, 2.5], [-3, 4e1]]",
                           "[[[1], [2.5]], [[-3], [4e1]]]"}) {
    absl::StatusOr<HttpInferRequest> parsed =
        Parse(std::string(R"({"inputs":[{"name":"x","datatype":"FP32",)"
                          R"("shape":[2,2],"data":)") +
              data + "}]}");
    ASSERT_TRUE(parsed.ok()) << data << ": " << parsed.status();
    const InferenceRequest::Input& in = parsed->request.inputs[0];
    EXPECT_TRUE(in.counted_in_values);
    ASSERT_EQ(in.byte_size, 16) << data;
    const float* values = static_cast<const float*>(in.data);
    EXPECT_EQ(std::vector<float>(values, values + 4),
              (std::vector<float>{1.0f, 2.5f, -3.0f, 40.0f}))
        << data;
  }
}

TEST(HttpInferRequestTest, BinaryDataOutputIsTheDefaultForOutputs) {
  absl::StatusOr<HttpInferRequest> parsed = Parse(
      R"({"inputs":[],"parameters":{"binary_data_output":true},)"
      R"("outputs":[{"name":"y"},{"name":"z","parameters":{"binary_data":false}}]})");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_TRUE(parsed->BinaryOutput(0));
  EXPECT_FALSE(parsed->BinaryOutput(1));
  EXPECT_TRUE(parsed->BinaryOutput(5));  // the default set, past the named
}

TEST(HttpInferRequestTest, RefusalsNameWhatWasExpected) {
  const struct {
    std::string header, binary, mention;
  } cases[] = {
      {"", "", "not valid JSON"},
      {"{\"inputs\":[", "", "not valid JSON"},
      {"null", "", "JSON object"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[NaN]}]})",
       "", "NaN and infinities have no JSON form"},
      {R"({"inputs":[{"name":"x","datatype":"BF16","shape":[1],"data":[1]}]})",
       "", "only as binary data"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[true]}]})",
       "", "a boolean at value 0"},
      {R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],)"
       R"("parameters":{"binary_data_size":4}}]})",
       "", "goes beyond"},
      {R"({"inputs":[]})", "abc", "3 bytes of binary data beyond"},
      // Binary bytes read as JSON: the header length is missing, or ends
      // inside the JSON.
      {std::string(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],)"
                   R"("parameters":{"binary_data_size":4}}]})") +
           "\x01\x02\x03\x04",
       "", "needs the header Inference-Header-Content-Length"},
      {R"({"inputs":[{"name":"x")", R"(,"datatype":"FP32"}]})",
       "read as the body's first 22 bytes, as Inference-Header-Content-Length "
       "says"},
  };
  for (const auto& bad : cases) {
    absl::StatusOr<HttpInferRequest> parsed = Parse(bad.header, bad.binary);
    ASSERT_FALSE(parsed.ok()) << bad.header;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(bad.mention), std::string::npos)
        << bad.header << ": " << parsed.status();
  }
}

// Arbitrary bytes never crash the parser (the fuzz target's smoke).
TEST(HttpInferRequestTest, TruncationsOfAValidHeaderAreRefusedCleanly) {
  const std::string header =
      R"({"id":"q","inputs":[{"name":"x","datatype":"FP32","shape":[1,2],)"
      R"("data":[[1,2]]}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]})";
  for (size_t length = 0; length < header.size(); ++length) {
    EXPECT_FALSE(Parse(header.substr(0, length)).ok()) << length;
  }
  EXPECT_TRUE(Parse(header).ok());
}

// Seeded random byte mutations of valid requests: every outcome is a parse
// or an InvalidArgument, never a crash (ASan and UBSan run this too).
TEST(HttpInferRequestTest, MutatedRequestsAreParsedOrRefused) {
  const std::string headers[] = {
      R"({"id":"q","inputs":[{"name":"x","datatype":"FP32","shape":[2,2],)"
      R"("data":[[1,2],[3,4e-3]]}],"outputs":[{"name":"y","parameters":)"
      R"({"binary_data":true,"datatype":"BF16"}}],)"
      R"("parameters":{"binary_data_output":false}})",
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],)"
      R"("parameters":{"binary_data_size":8}}]})",
  };
  const char alphabet[] = "{}[]\":,-+.0123456789eEtrufalsn \\x";
  std::mt19937 random(7);
  int parsed = 0, refused = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string header = headers[round % 2];
    const int edits = 1 + static_cast<int>(random() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = random() % header.size();
      switch (random() % 3) {
        case 0:
          header[at] = alphabet[random() % (sizeof(alphabet) - 1)];
          break;
        case 1:
          header.erase(at, 1 + random() % 3);
          break;
        default:
          header.insert(at, 1, alphabet[random() % (sizeof(alphabet) - 1)]);
      }
      if (header.empty()) header = "{";
    }
    const absl::StatusOr<HttpInferRequest> result =
        Parse(header, std::string(8, '\1'));
    if (result.ok()) {
      ++parsed;
    } else {
      ++refused;
      ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument)
          << header << ": " << result.status();
    }
  }
  EXPECT_GT(refused, 10000);  // most mutations break the request
  EXPECT_GT(parsed, 0);       // some leave it valid (a digit for a digit)
}

}  // namespace
}  // namespace reluserve
