#include "server/service/log_format.h"

#include <gtest/gtest.h>

#include <string>

namespace reluserve {
namespace {

TEST(JsonEscapeTest, EscapesWhatAJsonStringCannotHold) {
  EXPECT_EQ(JsonEscape("plain text"), "plain text");
  EXPECT_EQ(JsonEscape(R"(model-name="x" path=C:\w)"),
            R"(model-name=\"x\" path=C:\\w)");
  EXPECT_EQ(JsonEscape("a\nb\tc\rd"), R"(a\nb\tc\rd)");
  EXPECT_EQ(JsonEscape(std::string("nul\0bell\x07", 9)),
            R"(nul\u0000bell\u0007)");
  EXPECT_EQ(JsonEscape("ÿ → ✓"), "ÿ → ✓");  // UTF-8 passes through
}

}  // namespace
}  // namespace reluserve
