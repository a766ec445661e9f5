#include "common/command_line.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace reluserve
