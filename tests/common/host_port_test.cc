#include "common/host_port.h"

#include <gtest/gtest.h>

namespace reluserve {
namespace {

TEST(HostPortTest, BracketsABareIpv6LiteralOnly) {
  EXPECT_EQ(HostPort("127.0.0.1", 8001), "127.0.0.1:8001");
  EXPECT_EQ(HostPort("localhost", 0), "localhost:0");
  EXPECT_EQ(HostPort("::1", 8002), "[::1]:8002");
  EXPECT_EQ(HostPort("[::1]", 8002), "[::1]:8002");
  EXPECT_EQ(HostPort("::", 80), "[::]:80");
}

}  // namespace
}  // namespace reluserve
