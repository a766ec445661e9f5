#include "server/service/model_signature.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace reluserve {
namespace {

ModelConfig Model() {
  ModelConfig model;
  model.name = "head";
  model.in_features = 3072;
  model.out_features = 100;
  model.max_batch = 512;
  return model;
}

TEST(ModelSignatureTest, MetadataListsEveryTensorWithItsShape) {
  inference::ModelMetadataResponse metadata;
  FillModelMetadata(Model(), &metadata);
  EXPECT_EQ(metadata.name(), "head");
  ASSERT_EQ(metadata.versions_size(), 1);
  EXPECT_EQ(metadata.versions(0), "1");
  EXPECT_EQ(metadata.platform(), kPlatform);
  std::vector<std::string> described;
  for (const auto& tensor : metadata.inputs()) {
    EXPECT_EQ(tensor.datatype(), "FP32");
    described.push_back("in " + tensor.name() + " " +
                        std::to_string(tensor.shape_size()));
  }
  for (const auto& tensor : metadata.outputs()) {
    described.push_back("out " + tensor.name() + " " +
                        std::to_string(tensor.shape_size()));
  }
  EXPECT_EQ(described, (std::vector<std::string>{
                           "in x 2", "in grad_y 2", "out y 2", "out grad_x 2",
                           "out grad_weight 2", "out grad_bias 1"}));
  EXPECT_EQ(metadata.inputs(0).shape(0), -1);
  EXPECT_EQ(metadata.inputs(0).shape(1), 3072);
  EXPECT_EQ(metadata.outputs(2).shape(0), 100);
  EXPECT_EQ(metadata.outputs(2).shape(1), 3072);
}

TEST(ModelSignatureTest, ConfigStatesTheBatchLimitAndDimsWithoutTheBatch) {
  inference::ModelConfig config;
  FillModelConfig(Model(), Scheduler::Options(), &config);
  EXPECT_EQ(config.name(), "head");
  EXPECT_EQ(config.platform(), kPlatform);
  EXPECT_EQ(config.max_batch_size(), 512);
  ASSERT_EQ(config.input_size(), 2);
  EXPECT_EQ(config.input(0).name(), "x");
  EXPECT_EQ(config.input(0).data_type(), inference::TYPE_FP32);
  EXPECT_FALSE(config.input(0).optional());
  ASSERT_EQ(config.input(0).dims_size(), 1);
  EXPECT_EQ(config.input(0).dims(0), 3072);
  EXPECT_EQ(config.input(1).name(), "grad_y");
  EXPECT_TRUE(config.input(1).optional());
  ASSERT_EQ(config.output_size(), 4);
  EXPECT_EQ(config.output(0).name(), "y");
  ASSERT_EQ(config.output(0).dims_size(), 1);
  EXPECT_EQ(config.output(0).dims(0), 100);
  EXPECT_FALSE(config.has_dynamic_batching());
}

TEST(ModelSignatureTest, ConfigDescribesDynamicBatchingWhenOn) {
  Scheduler::Options scheduling;
  scheduling.compute_threads = 1;
  scheduling.max_batch_delay = std::chrono::microseconds(2000);
  scheduling.preferred_batch_rows = 32;
  inference::ModelConfig config;
  FillModelConfig(Model(), scheduling, &config);
  ASSERT_TRUE(config.has_dynamic_batching());
  EXPECT_EQ(config.dynamic_batching().max_queue_delay_microseconds(), 2000u);
  ASSERT_EQ(config.dynamic_batching().preferred_batch_size_size(), 1);
  EXPECT_EQ(config.dynamic_batching().preferred_batch_size(0), 32);
}

}  // namespace
}  // namespace reluserve
