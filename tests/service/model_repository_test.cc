#include "server/service/model_repository.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace reluserve {
namespace {

namespace fs = std::filesystem;

::testing::AssertionResult MessageHas(const absl::Status& status,
                                      const std::vector<std::string>& words) {
  for (const std::string& word : words) {
    if (status.message().find(word) == absl::string_view::npos) {
      return ::testing::AssertionFailure()
             << "message lacks '" << word << "': " << status.message();
    }
  }
  return ::testing::AssertionSuccess();
}

// Builds repositories in a fresh folder of the test's own.
class ModelRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::path(::testing::TempDir()) /
            ("model_repository_test_" + std::to_string(::getpid()) + "_" +
             info->name());
    fs::remove_all(root_);
    ASSERT_TRUE(fs::create_directories(root_));
    repo_ = (root_ / "repo").string();
    fs::create_directory(repo_);
  }
  void TearDown() override {
    std::error_code error;
    fs::remove_all(root_, error);
  }

  // <repo>/<relative>, as a string.
  std::string At(const std::string& relative) const {
    return (fs::path(repo_) / relative).string();
  }

  static void Write(const std::string& path, const std::string& text) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
  }

  // <repo>/<model>/<version>/model.safetensors, a placeholder the scanner
  // does not read.
  void AddVersion(const std::string& model, const std::string& version) {
    Write(At(model + "/" + version + "/model.safetensors"), "placeholder");
  }

  void AddConfig(const std::string& model, const std::string& text) {
    Write(At(model + "/config.pbtxt"), text);
  }

  // The refusal of a one-model repository whose config.pbtxt is `config`.
  absl::Status ConfigRefusal(const std::string& config) {
    fs::remove_all(repo_);
    AddVersion("m", "1");
    AddConfig("m", config);
    absl::StatusOr<std::vector<RepositoryModel>> models =
        ScanModelRepository(repo_);
    if (models.ok()) return absl::OkStatus();
    return models.status();
  }

  fs::path root_;
  std::string repo_;
};

std::vector<std::string> Names(const std::vector<RepositoryModel>& models) {
  std::vector<std::string> names;
  for (const RepositoryModel& model : models) names.push_back(model.name);
  return names;
}

std::vector<int64_t> Numbers(const RepositoryModel& model) {
  std::vector<int64_t> numbers;
  for (const auto& version : model.versions) numbers.push_back(version.number);
  return numbers;
}

TEST_F(ModelRepositoryTest, OneModelWithoutConfigHasTheDefaults) {
  AddVersion("head", "1");
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 1u);
  const RepositoryModel& model = (*models)[0];
  EXPECT_EQ(model.name, "head");
  EXPECT_EQ(model.config_path, "");
  ASSERT_EQ(model.versions.size(), 1u);
  EXPECT_EQ(model.versions[0].number, 1);
  EXPECT_EQ(model.versions[0].weights_path, At("head/1/model.safetensors"));
  EXPECT_EQ(model.max_batch_size, 0);
  EXPECT_FALSE(model.dynamic_batching);
  EXPECT_EQ(model.max_queue_delay_us, 0);
  EXPECT_TRUE(model.preferred_batch_sizes.empty());
  EXPECT_EQ(model.layers, "");
  EXPECT_TRUE(model.backward);
}

TEST_F(ModelRepositoryTest, SeveralModelsAreSortedByName) {
  AddVersion("zeta", "1");
  AddVersion("alpha", "3");
  AddVersion("mid", "2");
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(Names(*models), (std::vector<std::string>{"alpha", "mid", "zeta"}));
}

TEST_F(ModelRepositoryTest, FolderNamesAreModelNamesAndMustBeSafe) {
  AddVersion("my model", "1");
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_EQ(models.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(models.status().message().find(At("my model")), std::string::npos)
      << models.status();
  EXPECT_NE(models.status().message().find("letters, digits"),
            std::string::npos);
  fs::remove_all(repo_);
  AddVersion("resnet-50_v2.onnx", "1");
  EXPECT_TRUE(ScanModelRepository(repo_).ok());
}

TEST_F(ModelRepositoryTest, VersionsAscendNumericallyAndTheHighestIsLast) {
  for (const char* version : {"9", "10", "2", "0"}) AddVersion("m", version);
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 1u);
  const RepositoryModel& model = (*models)[0];
  EXPECT_EQ(Numbers(model), (std::vector<int64_t>{0, 2, 9, 10}));
  EXPECT_EQ(model.versions.back().weights_path, At("m/10/model.safetensors"));
}

TEST_F(ModelRepositoryTest, FullConfigSetsEveryField) {
  AddVersion("head", "1");
  AddConfig("head", R"pb(
    name: "head"
    platform: "onednn_linear_relu"
    backend: "reluserve"
    max_batch_size: 64
    dynamic_batching {
      preferred_batch_size: [ 8, 32 ]
      max_queue_delay_microseconds: 500
    }
    parameters {
      key: "layers"
      value { string_value: "linear,relu,linear" }
    }
    parameters: {
      key: "backward"
      value: { string_value: "false" }
    }
  )pb");
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 1u);
  const RepositoryModel& model = (*models)[0];
  EXPECT_EQ(model.config_path, At("head/config.pbtxt"));
  EXPECT_EQ(model.max_batch_size, 64);
  EXPECT_TRUE(model.dynamic_batching);
  EXPECT_EQ(model.max_queue_delay_us, 500);
  EXPECT_EQ(model.preferred_batch_sizes, (std::vector<int64_t>{8, 32}));
  EXPECT_EQ(model.layers, "linear,relu,linear");
  EXPECT_FALSE(model.backward);
}

TEST_F(ModelRepositoryTest, EmptyConfigAndEmptyDynamicBatchingAreAccepted) {
  AddVersion("a", "1");
  AddConfig("a", "");
  AddVersion("b", "1");
  // Triton's dynamic batching without a delay; preferred sizes are checked
  // against --max-batch elsewhere when max_batch_size is left out.
  AddConfig("b",
            "dynamic_batching { preferred_batch_size: 100000 }\n"
            "parameters { key: \"backward\" value { string_value: "
            "\"true\" } }");
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->size(), 2u);
  EXPECT_EQ((*models)[0].config_path, At("a/config.pbtxt"));
  EXPECT_FALSE((*models)[0].dynamic_batching);
  EXPECT_TRUE((*models)[1].dynamic_batching);
  EXPECT_EQ((*models)[1].max_queue_delay_us, 0);
  EXPECT_EQ((*models)[1].preferred_batch_sizes, (std::vector<int64_t>{100000}));
  EXPECT_TRUE((*models)[1].backward);
}

TEST_F(ModelRepositoryTest, HiddenEntriesAndFilesAreSkipped) {
  AddVersion("m", "1");
  Write(At("README.md"), "not a model");
  Write(At(".git/HEAD"), "ref");
  AddVersion(".cache", "1");
  Write(At("m/labels.txt"), "cat\ndog\n");
  Write(At("m/.1/model.safetensors"), "hidden version");
  Write(At("m/2/.model.safetensors.swp"), "");
  Write(At("m/2/model.safetensors"), "placeholder");
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(Names(*models), (std::vector<std::string>{"m"}));
  EXPECT_EQ(Numbers((*models)[0]), (std::vector<int64_t>{1, 2}));
}

// Triton ignores version folders that are not numbers or have a leading
// zero (docs/user_guide/model_repository.md, "Model Versions").
TEST_F(ModelRepositoryTest, FoldersThatAreNotVersionNumbersAreSkipped) {
  for (const char* folder : {"1", "v2", "01", "-3", "+4", "5a"}) {
    AddVersion("m", folder);
  }
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_TRUE(models.ok()) << models.status();
  EXPECT_EQ(Numbers((*models)[0]), (std::vector<int64_t>{1}));
}

TEST_F(ModelRepositoryTest, RefusesAMissingDirectory) {
  const std::string missing = (root_ / "nowhere").string();
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(missing);
  ASSERT_FALSE(models.ok());
  EXPECT_EQ(models.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(MessageHas(models.status(), {missing, "does not exist"}));
}

TEST_F(ModelRepositoryTest, RefusesAFileAsTheRepository) {
  const std::string file = (root_ / "file").string();
  Write(file, "x");
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(file);
  ASSERT_FALSE(models.ok());
  EXPECT_EQ(models.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(MessageHas(models.status(), {file, "not a directory"}));
}

TEST_F(ModelRepositoryTest, RefusesARepositoryWithoutModelFolders) {
  Write(At("README.md"), "no models here");
  Write(At(".hidden/1/model.safetensors"), "skipped");
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_FALSE(models.ok());
  EXPECT_EQ(models.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(MessageHas(models.status(), {repo_, "no model folder"}));
}

TEST_F(ModelRepositoryTest, RefusesAModelWithoutVersionFolders) {
  AddVersion("good", "1");
  AddConfig("bad", "");
  fs::create_directories(At("bad/v1"));
  fs::create_directories(At("bad/007"));
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_FALSE(models.ok());
  EXPECT_EQ(models.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      MessageHas(models.status(), {At("bad"), "no version folder", "007, v1"}));
}

TEST_F(ModelRepositoryTest, RefusesAVersionFolderWithoutWeights) {
  AddVersion("m", "1");
  fs::create_directories(At("m/2"));
  Write(At("m/2/model.onnx"), "wrong format");
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_FALSE(models.ok());
  EXPECT_EQ(models.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      MessageHas(models.status(), {At("m/2/model.safetensors"), "missing"}));
}

TEST_F(ModelRepositoryTest, RefusesWeightsThatAreNotAFile) {
  fs::create_directories(At("m/1/model.safetensors"));
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_FALSE(models.ok());
  EXPECT_EQ(models.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(MessageHas(models.status(),
                         {At("m/1/model.safetensors"), "not a regular file"}));
}

TEST_F(ModelRepositoryTest, RefusesAVersionNumberBeyondInt64) {
  AddVersion("m", "1");
  AddVersion("m", "99999999999999999999");
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_FALSE(models.ok());
  EXPECT_EQ(models.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      MessageHas(models.status(), {At("m/99999999999999999999"), "int64"}));
}

TEST_F(ModelRepositoryTest, RefusesAConfigThatIsNotAFile) {
  AddVersion("m", "1");
  fs::create_directories(At("m/config.pbtxt"));
  absl::StatusOr<std::vector<RepositoryModel>> models =
      ScanModelRepository(repo_);
  ASSERT_FALSE(models.ok());
  EXPECT_EQ(models.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(MessageHas(models.status(),
                         {At("m/config.pbtxt"), "not a regular file"}));
}

TEST_F(ModelRepositoryTest, ParseErrorsCarryFileLineAndColumn) {
  const absl::Status status =
      ConfigRefusal("name: \"m\"\nmax_batch_size: many\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(MessageHas(status, {At("m/config.pbtxt") + ":2:", "integer"}))
      << status;
}

TEST_F(ModelRepositoryTest, FieldsOutsideTheSubsetAreNamedAsUnsupported) {
  const absl::Status top =
      ConfigRefusal("max_batch_size: 8\ninstance_group [{ kind: KIND_CPU }]\n");
  EXPECT_EQ(top.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(MessageHas(top, {At("m/config.pbtxt") + ":2:", "instance_group",
                               "ReluServe does not support"}));

  const absl::Status nested =
      ConfigRefusal("dynamic_batching { priority_levels: 2 }");
  EXPECT_EQ(nested.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      MessageHas(nested, {At("m/config.pbtxt") + ":1:", "priority_levels",
                          "ReluServe does not support"}));
}

TEST_F(ModelRepositoryTest, RefusesWhatCannotBeHonoured) {
  struct Case {
    std::string config;
    std::vector<std::string> words;
  };
  const std::vector<Case> cases = {
      {"name: \"other\"", {"'other'", "'m'"}},
      {"platform: \"tensorrt_plan\"", {"platform", "tensorrt_plan"}},
      {"backend: \"onnxruntime\"", {"backend", "onnxruntime"}},
      {"input [{ name: \"x\" data_type: TYPE_FP32 dims: [ 4 ] }]",
       {"input", "derives inputs and outputs from the weights", "remove"}},
      {"output [{ name: \"y\" data_type: TYPE_FP32 dims: [ 4 ] }]",
       {"output", "derives inputs and outputs from the weights"}},
      {"max_batch_size: -1", {"max_batch_size", "-1"}},
      {"dynamic_batching { preferred_batch_size: [ 4, 0 ] }",
       {"preferred_batch_size", " 0 "}},
      {"dynamic_batching { preferred_batch_size: -4 }",
       {"preferred_batch_size", "-4"}},
      {"max_batch_size: 64\ndynamic_batching { preferred_batch_size: 65 }",
       {"preferred_batch_size", "65", "max_batch_size 64"}},
      {"dynamic_batching { max_queue_delay_microseconds: "
       "18446744073709551615 }",
       {"max_queue_delay_microseconds", "int64"}},
      {"parameters { key: \"threads\" value { string_value: \"4\" } }",
       {"'threads'", "backward, layers"}},
      {"parameters { key: \"backward\" value { string_value: \"yes\" } }",
       {"backward", "'yes'", "\"true\" or \"false\""}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.config);
    const absl::Status status = ConfigRefusal(c.config);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    std::vector<std::string> words = c.words;
    words.push_back(At("m/config.pbtxt"));
    EXPECT_TRUE(MessageHas(status, words));
  }
}

TEST_F(ModelRepositoryTest, AcceptsTheSupportedPlatformAndBackendAlone) {
  EXPECT_TRUE(ConfigRefusal("platform: \"onednn_linear_relu\"").ok());
  EXPECT_TRUE(ConfigRefusal("backend: \"reluserve\"").ok());
  EXPECT_TRUE(ConfigRefusal("name: \"m\" max_batch_size: 0").ok());
}

}  // namespace
}  // namespace reluserve
