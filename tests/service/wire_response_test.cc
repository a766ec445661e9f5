// WireResponse against the generated protobuf code: every combination of a
// layer's outputs, in signature and reversed order, each in FP32 or BF16,
// read back by the generated parser field by field and compared byte for
// byte with what the generated serializer writes; and the same inside a
// ModelStreamInferResponse.
#include "server/service/wire_response.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "grpc_service.pb.h"
#include "server/core/precision.h"
#include "server/service/grpc_request.h"
#include "tests/support/byte_buffer_testing.h"

namespace reluserve {
namespace {

struct NamedOutput {
  std::string name;
  std::vector<int64_t> shape;
};

// nn.Linear(200, 3) at N = 130: dims above 127 take two-byte varints.
const std::vector<NamedOutput>& LayerOutputs() {
  static const auto* outputs = new std::vector<NamedOutput>{
      {"y", {130, 3}},
      {"grad_x", {130, 200}},
      {"grad_weight", {3, 200}},
      {"grad_bias", {3}},
  };
  return *outputs;
}

// The outputs' names, all ResponseBytes reads of a signature.
ModelSignature OutputSignature() {
  ModelSignature signature;
  for (const NamedOutput& named : LayerOutputs()) {
    TensorSpec spec;
    spec.name = named.name;
    signature.outputs.push_back(spec);
  }
  return signature;
}

ValidatedRequest::Output MakeOutput(int index, Precision precision) {
  ValidatedRequest::Output output;
  output.index = index;
  output.precision = precision;
  output.shape = LayerOutputs()[static_cast<size_t>(index)].shape;
  output.count = 1;
  for (int64_t dim : output.shape) output.count *= dim;
  return output;
}

// Distinct bytes per output and position, so a swapped or shifted slice
// shows.
std::string Pattern(size_t bytes, int seed) {
  std::string pattern(bytes, '\0');
  for (size_t i = 0; i < bytes; ++i) {
    pattern[i] =
        static_cast<char>((i * 31 + static_cast<size_t>(seed) * 7) & 0xff);
  }
  return pattern;
}

using testing::Flatten;

struct Case {
  std::vector<int> order;  // output indices, in reply order
  std::vector<Precision> precisions;
};

std::vector<Case> EveryCase() {
  std::vector<Case> cases;
  const int outputs = static_cast<int>(LayerOutputs().size());
  for (int subset = 1; subset < (1 << outputs); ++subset) {
    std::vector<int> order;
    for (int i = 0; i < outputs; ++i) {
      if (subset & (1 << i)) order.push_back(i);
    }
    std::vector<std::vector<int>> orders = {order};
    if (order.size() > 1) orders.emplace_back(order.rbegin(), order.rend());
    for (const std::vector<int>& ordered : orders) {
      const int count = static_cast<int>(ordered.size());
      for (int bf16 = 0; bf16 < (1 << count); ++bf16) {
        Case c;
        c.order = ordered;
        for (int i = 0; i < count; ++i) {
          c.precisions.push_back((bf16 & (1 << i)) ? Precision::kBFloat16
                                                   : Precision::kFloat32);
        }
        cases.push_back(c);
      }
    }
  }
  return cases;
}

TEST(WireResponseTest, MatchesTheGeneratedCodeForEveryOutputCombination) {
  const std::string id(200, 'i');  // a two-byte length
  int checked = 0;
  for (const Case& c : EveryCase()) {
    WireResponse wire;
    wire.SetHeader("linear_relu", "1", id);
    inference::ModelInferResponse expected;
    expected.set_model_name("linear_relu");
    expected.set_model_version("1");
    expected.set_id(id);
    ValidatedRequest validated;
    for (size_t i = 0; i < c.order.size(); ++i) {
      const ValidatedRequest::Output output =
          MakeOutput(c.order[i], c.precisions[i]);
      validated.outputs.push_back(output);
      const NamedOutput& named =
          LayerOutputs()[static_cast<size_t>(c.order[i])];
      const std::string contents = Pattern(
          static_cast<size_t>(output.count) * ElementBytes(output.precision),
          c.order[i]);
      void* target = wire.AddOutput(named.name, output);
      ASSERT_EQ(reinterpret_cast<uintptr_t>(target) % 64, 0u);
      std::memcpy(target, contents.data(), contents.size());

      auto* tensor = expected.add_outputs();
      tensor->set_name(named.name);
      tensor->set_datatype(DatatypeName(output.precision));
      for (int64_t dim : named.shape) tensor->add_shape(dim);
      expected.add_raw_output_contents(contents);
    }
    SCOPED_TRACE(expected.ShortDebugString().substr(0, 200));

    const grpc::ByteBuffer unary = wire.Release(/*streamed=*/false);
    const std::string bytes = Flatten(unary);
    EXPECT_EQ(bytes, expected.SerializeAsString());
    EXPECT_EQ(wire.ByteSize(), static_cast<int64_t>(bytes.size()));
    EXPECT_EQ(wire.ByteSize(), ResponseBytes(validated, OutputSignature(),
                                             "linear_relu", "1", id));
    inference::ModelInferResponse parsed;
    ASSERT_TRUE(parsed.ParseFromString(bytes));
    EXPECT_EQ(parsed.model_name(), "linear_relu");
    EXPECT_EQ(parsed.model_version(), "1");
    EXPECT_EQ(parsed.id(), id);
    ASSERT_EQ(parsed.outputs_size(), expected.outputs_size());
    ASSERT_EQ(parsed.raw_output_contents_size(), expected.outputs_size());
    for (int i = 0; i < expected.outputs_size(); ++i) {
      EXPECT_EQ(parsed.outputs(i).name(), expected.outputs(i).name());
      EXPECT_EQ(parsed.outputs(i).datatype(), expected.outputs(i).datatype());
      EXPECT_TRUE(std::equal(parsed.outputs(i).shape().begin(),
                             parsed.outputs(i).shape().end(),
                             expected.outputs(i).shape().begin(),
                             expected.outputs(i).shape().end()));
      EXPECT_EQ(parsed.raw_output_contents(i), expected.raw_output_contents(i));
    }

    inference::ModelStreamInferResponse streamed_expected;
    *streamed_expected.mutable_infer_response() = expected;
    const std::string streamed = Flatten(wire.Release(/*streamed=*/true));
    EXPECT_EQ(streamed, streamed_expected.SerializeAsString());
    EXPECT_EQ(StreamResponseBytes(wire.ByteSize()),
              static_cast<int64_t>(streamed.size()));
    inference::ModelStreamInferResponse streamed_parsed;
    ASSERT_TRUE(streamed_parsed.ParseFromString(streamed));
    EXPECT_TRUE(streamed_parsed.error_message().empty());
    EXPECT_EQ(streamed_parsed.infer_response().SerializeAsString(),
              expected.SerializeAsString());
    ++checked;
  }
  // 15 subsets; 11 with a reversed order too; 2^k datatype choices each.
  EXPECT_EQ(checked, 4 * 2 + 6 * 4 * 2 + 4 * 8 * 2 + 1 * 16 * 2);
}

// Empty strings are absent, as proto3 writes them; an empty reply is an
// empty message, and Clear gets back to it.
TEST(WireResponseTest, LeavesEmptyFieldsOutAndClears) {
  WireResponse wire;
  wire.SetHeader("m", "", "");
  inference::ModelInferResponse expected;
  expected.set_model_name("m");
  EXPECT_EQ(Flatten(wire.Release(false)), expected.SerializeAsString());
  wire.AddOutput("y", MakeOutput(0, Precision::kFloat32));
  wire.Clear();
  EXPECT_EQ(wire.ByteSize(), 0);
  EXPECT_EQ(Flatten(wire.Release(false)), "");
}

// The output bytes belong to the reply once released: they outlive the
// WireResponse.
TEST(WireResponseTest, ReleasedBytesOutliveTheResponse) {
  grpc::ByteBuffer reply;
  std::string contents;
  {
    WireResponse wire;
    wire.SetHeader("linear_relu", "1", "7");
    const ValidatedRequest::Output output = MakeOutput(3, Precision::kFloat32);
    contents = Pattern(static_cast<size_t>(output.count) * 4, 3);
    std::memcpy(wire.AddOutput("grad_bias", output), contents.data(),
                contents.size());
    reply = wire.Release(false);
  }
  inference::ModelInferResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(reply)));
  ASSERT_EQ(parsed.raw_output_contents_size(), 1);
  EXPECT_EQ(parsed.raw_output_contents(0), contents);
}

TEST(StreamErrorReplyTest, IsAStreamResponseWithOnlyTheMessage) {
  inference::ModelStreamInferResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(
      Flatten(StreamErrorReply("INVALID_ARGUMENT: " + std::string(300, 'e')))));
  EXPECT_EQ(parsed.error_message(),
            "INVALID_ARGUMENT: " + std::string(300, 'e'));
  EXPECT_FALSE(parsed.has_infer_response());
}

}  // namespace
}  // namespace reluserve
