// ReadTlsFiles: the start-up checks of --tls-cert, --tls-key and
// --tls-client-ca, each refusal naming the flag and the file.

#include "server/service/tls_files.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/support/file_testing.h"
#include "tests/support/tls_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::SharedTestCertificates;

class TlsFilesTest : public testing::TempDirTest {
 protected:
  static TlsFiles Good(bool mutual) {
    TlsFiles files{SharedTestCertificates().Path("server.pem"),
                   SharedTestCertificates().Path("server.key"), ""};
    if (mutual) files.client_ca_file = SharedTestCertificates().Path("ca.pem");
    return files;
  }
  static void ExpectRefused(const TlsFiles& files,
                            const std::vector<std::string>& says) {
    absl::StatusOr<TlsPems> pems = ReadTlsFiles(files);
    ASSERT_FALSE(pems.ok());
    for (const std::string& text : says) {
      EXPECT_TRUE(absl::StrContains(pems.status().message(), text))
          << "'" << text << "' not in: " << pems.status();
    }
  }
};

TEST_F(TlsFilesTest, ReadsACertificateWithItsKeyAndAClientCa) {
  absl::StatusOr<TlsPems> plain = ReadTlsFiles(Good(false));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->cert_chain, SharedTestCertificates().Read("server.pem"));
  EXPECT_EQ(plain->private_key, SharedTestCertificates().Read("server.key"));
  EXPECT_TRUE(plain->client_ca.empty());
  absl::StatusOr<TlsPems> mutual = ReadTlsFiles(Good(true));
  ASSERT_TRUE(mutual.ok()) << mutual.status();
  EXPECT_EQ(mutual->client_ca, SharedTestCertificates().Read("ca.pem"));
}

TEST_F(TlsFilesTest, RefusesAKeyOfAnotherCertificate) {
  TlsFiles files = Good(false);
  files.key_file = SharedTestCertificates().Path("other-server.key");
  ExpectRefused(files, {"--tls-key", files.key_file, "is not the key of",
                        files.cert_file});
}

TEST_F(TlsFilesTest, RefusesFilesThatAreNotPem) {
  const std::string junk = WriteFile("not a certificate\n", "junk.pem");
  TlsFiles files = Good(true);
  files.cert_file = junk;
  ExpectRefused(files, {"--tls-cert", junk, "expected a certificate"});
  files = Good(true);
  files.key_file = junk;
  ExpectRefused(files, {"--tls-key", junk, "private key"});
  files = Good(true);
  files.client_ca_file = junk;
  ExpectRefused(files, {"--tls-client-ca", junk, "CA certificates"});
  // A key where the certificate belongs, and the other way round.
  files = Good(false);
  files.cert_file = SharedTestCertificates().Path("server.key");
  ExpectRefused(files, {"--tls-cert", "expected a certificate"});
}

TEST_F(TlsFilesTest, RefusesMissingFiles) {
  TlsFiles files = Good(false);
  files.cert_file = PathFor("absent.pem");
  ExpectRefused(files, {"--tls-cert", files.cert_file, "cannot open"});
}

}  // namespace
}  // namespace reluserve
