#ifndef RELUSERVE_TESTS_SUPPORT_TLS_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_TLS_TESTING_H_

// Throwaway TLS material for the tests, made once per test binary by
// tests/support/make_test_certs.sh (openssl): a CA with a server
// certificate (SAN IP:127.0.0.1, IP:::1, DNS:localhost) and a client
// certificate, and another CA with its own server and client certificates.

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace reluserve::testing {

class TestCertificates {
 public:
  // The directory the script wrote, made on first use; fails the test
  // (and returns an empty path) when openssl does not run.
  static const std::filesystem::path& Dir() {
    static const std::filesystem::path dir = Make();
    return dir;
  }
  // "ca.pem", "server.key", "other-client.pem", ...
  static std::string Path(const std::string& name) {
    return (Dir() / name).string();
  }
  static std::string Read(const std::string& name) {
    std::ifstream file(Path(name), std::ios::binary);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }

 private:
  static std::filesystem::path Make() {
    const std::filesystem::path dir =
        std::filesystem::path(::testing::TempDir()) /
        ("reluserve-certs-" + std::to_string(getpid()));
    const std::string command = std::string(RELUSERVE_SOURCE_DIR) +
                                "/tests/support/make_test_certs.sh '" +
                                dir.string() + "'";
    const int status = std::system(command.c_str());
    EXPECT_EQ(status, 0) << command;
    if (status != 0) return {};
    // Constructed before the handler is registered, so destroyed after it.
    static std::filesystem::path remove_at_exit;
    remove_at_exit = dir;
    std::atexit([] { std::filesystem::remove_all(remove_at_exit); });
    return dir;
  }
};

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_TLS_TESTING_H_
