#ifndef RELUSERVE_TESTS_SUPPORT_FILE_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_FILE_TESTING_H_

// Files for the tests of the weights readers (safetensors, state dicts,
// single-layer weights): a fixture with a fresh temporary directory per
// test, raw safetensors bytes built by hand (so a test can write what no
// writer would), and the check that a refusal names what it should.

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/tensor_testing.h"

namespace reluserve::testing {

// `v` as the 8 little-endian bytes of a safetensors length prefix.
inline std::string LittleEndianU64(uint64_t v) {
  std::string out(8, '\0');
  for (char& c : out) {
    c = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

// A safetensors file: length prefix, header text as given, data bytes.
inline std::string Safetensors(const std::string& header,
                               const std::string& data) {
  return LittleEndianU64(header.size()) + header + data;
}

// Passes if `status` is a refusal with `code` whose message holds every one
// of `words` (a path is a word too).
inline ::testing::AssertionResult IsRefused(
    const absl::Status& status, absl::StatusCode code,
    const std::vector<std::string>& words) {
  if (status.ok()) {
    return ::testing::AssertionFailure() << "accepted, expected a refusal";
  }
  if (status.code() != code) {
    return ::testing::AssertionFailure()
           << "code " << absl::StatusCodeToString(status.code())
           << ", expected " << absl::StatusCodeToString(code) << ": "
           << status.message();
  }
  const std::string message(status.message());
  for (const std::string& word : words) {
    if (message.find(word) == std::string::npos) {
      return ::testing::AssertionFailure()
             << "message lacks '" << word << "': " << message;
    }
  }
  return ::testing::AssertionSuccess();
}

// The same for a message that must name `path` and hold `word`.
inline ::testing::AssertionResult IsRefused(const absl::Status& status,
                                            absl::StatusCode code,
                                            const std::string& path,
                                            const std::string& word) {
  return IsRefused(status, code, std::vector<std::string>{path, word});
}

template <typename T>
::testing::AssertionResult IsRefused(const absl::StatusOr<T>& result,
                                     absl::StatusCode code,
                                     const std::string& path,
                                     const std::string& word) {
  return IsRefused(result.status(), code, path, word);
}

// A fixture whose every test has a fresh, empty directory dir_ (under
// gtest's TempDir, named by suite, process and test), removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat(info->test_suite_name(), "_", ::getpid(), "_",
                        info->name());
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(std::filesystem::create_directories(dir_)) << dir_;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string PathFor(const std::string& name) const {
    return (dir_ / name).string();
  }

  // Writes `bytes` to the file `name` in dir_ (replacing it), returns its
  // path; a failed write fails the test.
  std::string WriteFile(const std::string& bytes,
                        const std::string& name = "t.safetensors") const {
    const std::string path = PathFor(name);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    EXPECT_FALSE(out.fail()) << path;
    return path;
  }

  std::filesystem::path dir_;
};

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_FILE_TESTING_H_
