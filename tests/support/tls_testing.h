#ifndef RELUSERVE_TESTS_SUPPORT_TLS_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_TLS_TESTING_H_

// Throwaway TLS material for the security tests: certificates made by
// tests/support/make_test_certs.sh (openssl) in a temporary directory. The
// tests find the script through RELUSERVE_SOURCE_DIR (the repository root,
// defined for every target that uses reluserve_test_support).

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

#include "gtest/gtest.h"

namespace reluserve::testing {

// ca.pem, server.pem/.key (SAN 127.0.0.1, ::1, localhost), client.pem/.key,
// and other-ca.pem, other-server.pem/.key, other-client.pem/.key from a
// second CA. Made once per object; removed with it.
class TestCertificates {
 public:
  TestCertificates() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "reluserve-tls-XXXXXX")
            .string();
    if (mkdtemp(pattern.data()) == nullptr) {
      error_ = "mkdtemp failed";
      return;
    }
    dir_ = pattern;
#ifdef RELUSERVE_SOURCE_DIR
    const std::string command = std::string("bash '") + RELUSERVE_SOURCE_DIR +
                                "/tests/support/make_test_certs.sh' '" +
                                dir_.string() + "'";
    if (std::system(command.c_str()) != 0) error_ = "failed: " + command;
#else
    error_ = "RELUSERVE_SOURCE_DIR is not defined for this test";
#endif
  }
  ~TestCertificates() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  TestCertificates(const TestCertificates&) = delete;
  TestCertificates& operator=(const TestCertificates&) = delete;

  // Empty when every file was made.
  const std::string& error() const { return error_; }
  std::string Path(const std::string& name) const {
    return (dir_ / name).string();
  }
  std::string Read(const std::string& name) const {
    std::ifstream in(Path(name), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  // A server certificate `name`.pem/.key signed by ca.pem whose only name
  // is `san` (e.g. "DNS:elsewhere.test"); false when openssl failed.
  bool MakeServerCertificate(const std::string& name,
                             const std::string& san) const {
    const std::string base = "'" + Path(name) + "'";
    const std::string command =
        "openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256"
        " -keyout " +
        base + ".key -out " + base + ".csr -subj /CN=" + name +
        " 2>/dev/null && printf 'subjectAltName=%s\\nextendedKeyUsage="
        "serverAuth\\n' '" +
        san + "' >" + base +
        ".ext && openssl x509 -req"
        " -in " +
        base + ".csr -CA '" + Path("ca.pem") + "' -CAkey '" + Path("ca.key") +
        "' -CAcreateserial -out " + base +
        ".pem -days 2"
        " -extfile " +
        base + ".ext 2>/dev/null";
    return std::system(command.c_str()) == 0;
  }

  // Writes `text` to `name` in the directory; its path.
  std::string Write(const std::string& name, const std::string& text) const {
    std::ofstream(Path(name), std::ios::binary) << text;
    return Path(name);
  }

 private:
  std::filesystem::path dir_;
  std::string error_;
};

// One set for the whole test binary, for tests that only read the files.
inline const TestCertificates& SharedTestCertificates() {
  static const TestCertificates certs;
  EXPECT_EQ(certs.error(), "");
  return certs;
}

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_TLS_TESTING_H_
