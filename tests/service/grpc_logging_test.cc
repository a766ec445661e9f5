// RouteGrpcLogsToSpdlog for protobuf's own log lines: a request whose string
// field is not UTF-8 (found by tests/fuzz's grpc_request target; its input
// is tests/fuzz/corpus/grpc_request/regress-invalid-utf8-model-name) makes
// protobuf complain once per request, which must reach spdlog at debug
// level, not stderr past --log-format and --log-level.
#include "server/service/grpc_logging.h"

#include <gtest/gtest.h>

#include <memory>
#include <sstream>
#include <string>

#include "grpc_service.pb.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"

namespace reluserve {
namespace {

// model_name (field 1) holding the bytes 0xff 0xfe.
constexpr char kInvalidUtf8ModelName[] = "\x0a\x02\xff\xfe";

class ProtobufLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_ = spdlog::default_logger();
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(lines_);
    sink->set_pattern("%l %v");
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(spdlog::level::debug);
    spdlog::set_default_logger(logger);
    RouteGrpcLogsToSpdlog();
  }
  void TearDown() override { spdlog::set_default_logger(previous_); }

  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream lines_;
};

TEST_F(ProtobufLogTest, InvalidUtf8InARequestIsLoggedAtDebugNotOnStderr) {
  inference::ModelInferRequest request;
  ::testing::internal::CaptureStderr();
  const bool parsed = request.ParseFromString(
      std::string(kInvalidUtf8ModelName, sizeof(kInvalidUtf8ModelName) - 1));
  const std::string stderr_text = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(parsed);
  EXPECT_EQ(stderr_text, "");
  const std::string logged = lines_.str();
  EXPECT_EQ(logged.rfind("debug protobuf: wire_format_lite.cc:", 0), 0u)
      << logged;
  EXPECT_NE(logged.find("inference.ModelInferRequest.model_name"),
            std::string::npos)
      << logged;
  EXPECT_NE(logged.find("invalid UTF-8"), std::string::npos) << logged;
}

TEST_F(ProtobufLogTest, NothingAboveDebugSoTheDefaultLevelHidesIt) {
  spdlog::default_logger()->set_level(spdlog::level::info);
  inference::ModelInferRequest request;
  EXPECT_FALSE(request.ParseFromString(
      std::string(kInvalidUtf8ModelName, sizeof(kInvalidUtf8ModelName) - 1)));
  EXPECT_EQ(lines_.str(), "");
}

}  // namespace
}  // namespace reluserve
