#include "server/service/model_signature.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/model_testing.h"

namespace reluserve {
namespace {

ModelConfig Model() {
  ModelConfig model;
  model.name = "head";
  model.max_batch = 512;
  return model;
}

// One nn.Linear(3072, 100) + ReLU: the default model's signature.
const ModelSignature& Signature() {
  static const auto* model = new std::shared_ptr<const SequentialModel>(
      testing::SingleLayerModel(MakeDefaultWeights(3072, 100, 1)));
  return (*model)->signature();
}

TEST(ModelSignatureTest, MetadataListsEveryTensorWithItsShape) {
  inference::ModelMetadataResponse metadata;
  FillModelMetadata(Model(), {"1"}, Signature(), &metadata);
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
  FillModelConfig(Model(), Signature(), Scheduler::Options(), &config);
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
  FillModelConfig(Model(), Signature(), scheduling, &config);
  ASSERT_TRUE(config.has_dynamic_batching());
  EXPECT_EQ(config.dynamic_batching().max_queue_delay_microseconds(), 2000u);
  ASSERT_EQ(config.dynamic_batching().preferred_batch_size_size(), 1);
  EXPECT_EQ(config.dynamic_batching().preferred_batch_size(0), 32);
}

}  // namespace
}  // namespace reluserve

namespace reluserve {
namespace {

// A deep inference-only model lists only x and y; a deep full model every
// parameter gradient, which has no batch dimension in either answer.
TEST(ModelSignatureTest, DeepModelsListWhatTheirSignatureSays) {
  std::vector<SequentialLayerSpec> layers(2);
  layers[0].weights = MakeDefaultWeights(12, 8, 1);
  layers[0].module = "0";
  layers[0].weight_name = "0.weight";
  layers[0].bias_name = "0.bias";
  layers[1].weights = MakeDefaultWeights(8, 4, 2);
  layers[1].weights.bias.clear();
  layers[1].relu = false;
  layers[1].module = "2";
  layers[1].weight_name = "2.weight";
  SequentialModelOptions inference_only;
  inference_only.backward = false;
  const auto forward = SequentialModel::Create(layers, inference_only);
  ASSERT_TRUE(forward.ok());
  inference::ModelConfig config;
  FillModelConfig(Model(), (*forward)->signature(), Scheduler::Options(),
                  &config);
  ASSERT_EQ(config.input_size(), 1);
  EXPECT_EQ(config.input(0).name(), "x");
  ASSERT_EQ(config.output_size(), 1);
  EXPECT_EQ(config.output(0).name(), "y");
  EXPECT_EQ(config.output(0).dims(0), 4);

  const auto full = SequentialModel::Create(layers);
  ASSERT_TRUE(full.ok());
  inference::ModelMetadataResponse metadata;
  FillModelMetadata(Model(), {"1", "2"}, (*full)->signature(), &metadata);
  ASSERT_EQ(metadata.versions_size(), 2);
  std::vector<std::string> outputs;
  for (const auto& tensor : metadata.outputs()) {
    std::string shape;
    for (int64_t dim : tensor.shape()) shape += " " + std::to_string(dim);
    outputs.push_back(tensor.name() + shape);
  }
  EXPECT_EQ(outputs, (std::vector<std::string>{
                         "y -1 4", "grad_x -1 12", "grad_0.weight 8 12",
                         "grad_0.bias 8", "grad_2.weight 4 8"}));
}

}  // namespace
}  // namespace reluserve
