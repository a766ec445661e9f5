#include "common/command_line.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>
#include <vector>

namespace reluserve {
namespace {

TEST(NearestNameTest, FindsTyposAndRefusesOtherWords) {
  const std::vector<std::string> names = {"health", "metadata", "infer"};
  EXPECT_EQ(NearestName("infre", names), "infer");  // swapped neighbours
  EXPECT_EQ(NearestName("helth", names), "health");
  EXPECT_EQ(NearestName("metdata", names), "metadata");
  EXPECT_EQ(NearestName("infer", names), "infer");
  EXPECT_EQ(NearestName("status", names), "");
  EXPECT_EQ(NearestName("x", names), "");
}

// An app like the client's: two subcommands, one with an option.
struct TestApp {
  TestApp() : app("test app", "tester") {
    app.require_subcommand(1);
    AddVersionFlag(app, "tester");
    run = app.add_subcommand("run", "runs");
    run->add_option("--count", count)->check(CLI::Range(1, 10));
    app.add_subcommand("stop", "stops");
  }

  std::optional<int> Parse(std::vector<const char*> args) {
    args.insert(args.begin(), "tester");
    return ParseCommandLine(app, static_cast<int>(args.size()), args.data());
  }

  CLI::App app;
  CLI::App* run = nullptr;
  int count = 1;
};

TEST(ParseCommandLineTest, GoesOnAfterAValidCommandLine) {
  TestApp test;
  EXPECT_EQ(test.Parse({"run", "--count", "3"}), std::nullopt);
  EXPECT_TRUE(test.run->parsed());
  EXPECT_EQ(test.count, 3);
}

TEST(ParseCommandLineTest, VersionAndHelpExitZeroOnStdout) {
  {
    TestApp test;
    testing::internal::CaptureStdout();
    EXPECT_EQ(test.Parse({"--version"}), kExitOk);
    EXPECT_EQ(testing::internal::GetCapturedStdout(),
              VersionLine("tester") + "\n");
  }
  {
    TestApp test;
    testing::internal::CaptureStdout();
    EXPECT_EQ(test.Parse({"--help"}), kExitOk);
    EXPECT_NE(testing::internal::GetCapturedStdout().find("Subcommands:"),
              std::string::npos);
  }
}

TEST(ParseCommandLineTest, MisspeltSubcommandSaysWhatItProbablyMeant) {
  TestApp test;
  testing::internal::CaptureStderr();
  EXPECT_EQ(test.Parse({"rnu", "--count", "3"}), kExitUsage);
  const std::string error = testing::internal::GetCapturedStderr();
  EXPECT_NE(error.find("unknown subcommand 'rnu'; did you mean 'run'?"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("(subcommands: run, stop)"), std::string::npos) << error;
  EXPECT_NE(error.find("Run 'tester --help' for usage."), std::string::npos)
      << error;
}

TEST(ParseCommandLineTest, BadValueIsAUsageErrorNamingTheOption) {
  TestApp test;
  testing::internal::CaptureStderr();
  EXPECT_EQ(test.Parse({"run", "--count", "99"}), kExitUsage);
  const std::string error = testing::internal::GetCapturedStderr();
  EXPECT_NE(error.find("--count"), std::string::npos) << error;
}

TEST(ParseCommandLineTest, MissingSubcommandIsAUsageError) {
  TestApp test;
  testing::internal::CaptureStderr();
  EXPECT_EQ(test.Parse({}), kExitUsage);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("subcommand"),
            std::string::npos);
}

TEST(EnvironmentNamesTest, EveryLongOptionComesFromTheEnvironment) {
  CLI::App app("env test", "tester");
  AddVersionFlag(app, "tester");
  int max_batch = 1;
  std::string host = "127.0.0.1";
  app.add_option("--max-batch", max_batch);
  app.add_option("--host", host);
  AddEnvironmentNames(app, "RELUSERVE_TEST_");
  EXPECT_EQ(app.get_option("--max-batch")->get_envname(),
            "RELUSERVE_TEST_MAX_BATCH");
  EXPECT_EQ(app.get_option("--host")->get_envname(), "RELUSERVE_TEST_HOST");
  EXPECT_EQ(app.get_version_ptr()->get_envname(), "");

  setenv("RELUSERVE_TEST_MAX_BATCH", "64", 1);
  setenv("RELUSERVE_TEST_HOST", "::", 1);
  const char* argv[] = {"tester", "--host", "0.0.0.0"};
  EXPECT_EQ(ParseCommandLine(app, 3, argv), std::nullopt);
  unsetenv("RELUSERVE_TEST_MAX_BATCH");
  unsetenv("RELUSERVE_TEST_HOST");
  EXPECT_EQ(max_batch, 64);    // from the environment
  EXPECT_EQ(host, "0.0.0.0");  // the command line wins
  const std::string configuration = EffectiveConfiguration(app);
  EXPECT_NE(configuration.find("max-batch=64"), std::string::npos)
      << configuration;
  EXPECT_NE(configuration.find("host=\"0.0.0.0\""), std::string::npos)
      << configuration;
}

}  // namespace
}  // namespace reluserve
