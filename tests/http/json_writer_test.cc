#include "server/http/json_writer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "grpc_service.pb.h"
#include "model_config.pb.h"

namespace reluserve {
namespace {

TEST(JsonWriterTest, FloatsReadBackExactlyAndNonFiniteAsPythonWritesThem) {
  const std::vector<float> values = {0.1f,
                                     -3.0f,
                                     1e-45f,
                                     std::numeric_limits<float>::max(),
                                     std::numeric_limits<float>::quiet_NaN(),
                                     std::numeric_limits<float>::infinity(),
                                     -std::numeric_limits<float>::infinity()};
  std::string out;
  AppendJsonFloats(values.data(), values.size(), out);
  EXPECT_EQ(out.substr(out.size() - 23), "NaN,Infinity,-Infinity]");
  // Each finite value reads back to the same float.
  const char* cursor = out.c_str() + 1;
  for (size_t i = 0; i < 4; ++i) {
    char* end = nullptr;
    EXPECT_EQ(std::strtof(cursor, &end), values[i]) << out;
    cursor = end + 1;
  }
  EXPECT_EQ(out.substr(0, 8), "[0.1,-3,");
}

TEST(JsonWriterTest, ProtoFieldNamesNumbersEnumsAndMaps) {
  inference::ModelConfig config;
  config.set_name("m");
  config.set_max_batch_size(4096);
  auto* input = config.add_input();
  input->set_name("x");
  input->set_data_type(inference::TYPE_FP32);
  input->add_dims(int64_t{1} << 40);
  (*config.mutable_parameters())["k"].set_string_value("v");
  const std::string json = ProtoToJson(config);
  EXPECT_NE(json.find("\"max_batch_size\":4096"), std::string::npos) << json;
  EXPECT_NE(json.find("\"dims\":[1099511627776]"), std::string::npos) << json;
  EXPECT_NE(json.find("\"data_type\":\"TYPE_FP32\""), std::string::npos)
      << json;
  EXPECT_NE(json.find("\"parameters\":{\"k\":{\"string_value\":\"v\"}}"),
            std::string::npos)
      << json;

  inference::RepositoryIndexResponse index;
  index.add_models()->set_name("a");
  index.add_models()->set_name("b");
  const std::string models = RepeatedToJson(index, "models");
  EXPECT_EQ(models.front(), '[');
  EXPECT_NE(models.find("\"name\":\"b\""), std::string::npos) << models;
}

TEST(JsonWriterTest, StringsAreEscaped) {
  EXPECT_EQ(JsonString("a\"b\\c\n"), R"("a\"b\\c\n")");
}

}  // namespace
}  // namespace reluserve
