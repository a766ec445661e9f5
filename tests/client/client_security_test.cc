// LoadClientSecurity: the TLS flags' files read and checked (every refusal
// names the flag and the path, never a secret), and the token file's
// format; against certificates made by tests/support/make_test_certs.sh.

#include "client/client_security.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/client_tls_testing.h"

namespace reluserve {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class ClientSecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs_ = new testing::TestCertificates(); }
  static void TearDownTestSuite() { delete certs_; }
  void SetUp() override { ASSERT_EQ(certs_->error(), ""); }

  static SecurityFiles Mutual() {
    SecurityFiles files;
    files.tls_ca = certs_->Path("ca.pem");
    files.tls_cert = certs_->Path("client.pem");
    files.tls_key = certs_->Path("client.key");
    return files;
  }

  static testing::TestCertificates* certs_;
};

testing::TestCertificates* ClientSecurityTest::certs_ = nullptr;

TEST_F(ClientSecurityTest, NoFlagsIsPlaintextWithoutToken) {
  absl::StatusOr<ClientSecurity> security = LoadClientSecurity({});
  ASSERT_TRUE(security.ok()) << security.status();
  EXPECT_FALSE(security->tls);
  EXPECT_EQ(security->ca_pem, "");
  EXPECT_EQ(security->cert_pem, "");
  EXPECT_EQ(security->token, "");
}

TEST_F(ClientSecurityTest, ReadsEveryFile) {
  SecurityFiles files = Mutual();
  files.token = certs_->Write("token", "s3cret\n");
  absl::StatusOr<ClientSecurity> security = LoadClientSecurity(files);
  ASSERT_TRUE(security.ok()) << security.status();
  EXPECT_TRUE(security->tls);
  EXPECT_EQ(security->ca_pem, certs_->Read("ca.pem"));
  EXPECT_EQ(security->cert_pem, certs_->Read("client.pem"));
  EXPECT_EQ(security->key_pem, certs_->Read("client.key"));
  EXPECT_EQ(security->token, "s3cret");
}

TEST_F(ClientSecurityTest, ACaAloneOrACertificateAloneTurnsTlsOn) {
  SecurityFiles ca_only;
  ca_only.tls_ca = certs_->Path("ca.pem");
  EXPECT_TRUE(ca_only.tls());
  ASSERT_TRUE(LoadClientSecurity(ca_only).ok());
  EXPECT_TRUE(LoadClientSecurity(ca_only)->tls);
  SecurityFiles cert_only = Mutual();
  cert_only.tls_ca.clear();  // the system's roots
  EXPECT_TRUE(cert_only.tls());
  absl::StatusOr<ClientSecurity> security = LoadClientSecurity(cert_only);
  ASSERT_TRUE(security.ok()) << security.status();
  EXPECT_TRUE(security->tls);
  EXPECT_EQ(security->ca_pem, "");
  SecurityFiles token_only;
  token_only.token = certs_->Write("token-only", "t\n");
  EXPECT_FALSE(token_only.tls());
  EXPECT_FALSE(LoadClientSecurity(token_only)->tls);
}

TEST_F(ClientSecurityTest, CertificateAndKeyGoTogether) {
  SecurityFiles no_key = Mutual();
  no_key.tls_key.clear();
  SecurityFiles no_cert = Mutual();
  no_cert.tls_cert.clear();
  for (const SecurityFiles& files : {no_key, no_cert}) {
    EXPECT_THAT(SecurityFlagsProblem(files),
                AllOf(HasSubstr("--tls-cert"), HasSubstr("--tls-key")));
    absl::StatusOr<ClientSecurity> security = LoadClientSecurity(files);
    EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(SecurityFlagsProblem(Mutual()), "");
  EXPECT_EQ(SecurityFlagsProblem({}), "");
}

TEST_F(ClientSecurityTest, AFileThatCannotBeUsedIsNamedWithItsFlag) {
  const std::string missing = certs_->Path("no-such.pem");
  const std::string not_pem = certs_->Write("not.pem", "hello\n");
  struct Case {
    const char* flag;
    SecurityFiles files;
    std::string path;
    const char* why;
  };
  SecurityFiles ca = Mutual(), cert = Mutual(), key = Mutual(),
                key_not_pem = Mutual(), mismatch = Mutual(), token = Mutual();
  ca.tls_ca = missing;
  cert.tls_cert = not_pem;
  key.tls_key = missing;
  key_not_pem.tls_key = not_pem;
  mismatch.tls_key = certs_->Path("other-client.key");
  token.token = missing;
  SecurityFiles ca_directory = Mutual();
  ca_directory.tls_ca = certs_->Path("");
  for (const Case& c : {
           Case{"--tls-ca", ca, missing, "No such file"},
           Case{"--tls-cert", cert, not_pem, "no PEM certificate"},
           Case{"--tls-key", key, missing, "No such file"},
           Case{"--tls-key", key_not_pem, not_pem, "no unencrypted PEM"},
           Case{"--tls-key", mismatch, certs_->Path("other-client.key"),
                "not the key of the certificate in"},
           Case{"--token-file", token, missing, "No such file"},
           Case{"--tls-ca", ca_directory, certs_->Path(""), "cannot read"},
       }) {
    absl::StatusOr<ClientSecurity> security = LoadClientSecurity(c.files);
    EXPECT_EQ(security.status().code(), absl::StatusCode::kFailedPrecondition)
        << c.flag << " " << c.path << ": " << security.status();
    EXPECT_THAT(
        security.status().message(),
        AllOf(HasSubstr(std::string(c.flag) + " " + c.path), HasSubstr(c.why)));
  }
}

TEST_F(ClientSecurityTest, TokenIsTheFirstLineThatIsNoComment) {
  EXPECT_EQ(TokenFromFile("abc"), "abc");
  EXPECT_EQ(TokenFromFile("# the token\n\n  abc.def-1  \r\nsecond\n"),
            "abc.def-1");
  EXPECT_EQ(TokenFromFile("\t tok\t\r\n"), "tok");
  EXPECT_EQ(TokenFromFile("# only a comment\n\n"), "");
  EXPECT_EQ(TokenFromFile(""), "");
  EXPECT_EQ(BearerValue("abc"), "Bearer abc");
}

TEST_F(ClientSecurityTest, ATokenFileWithoutAUsableTokenIsRefused) {
  for (const char* text :
       {"", "# nothing\n\n", "two words\n", "tab\there\n", "caf\xc3\xa9\n"}) {
    SecurityFiles files;
    files.token = certs_->Write("bad-token", text);
    absl::StatusOr<ClientSecurity> security = LoadClientSecurity(files);
    EXPECT_EQ(security.status().code(), absl::StatusCode::kFailedPrecondition)
        << text;
    EXPECT_THAT(security.status().message(),
                HasSubstr("--token-file " + files.token));
    // The secret itself never appears.
    EXPECT_THAT(security.status().message(), Not(HasSubstr("words")));
  }
}

TEST_F(ClientSecurityTest, ValidateClientSecurityWantsCertificateAndKey) {
  ClientSecurity security;
  EXPECT_TRUE(ValidateClientSecurity(security).ok());
  security.tls = true;
  security.cert_pem = certs_->Read("client.pem");
  EXPECT_EQ(ValidateClientSecurity(security).code(),
            absl::StatusCode::kInvalidArgument);
  security.key_pem = certs_->Read("client.key");
  EXPECT_TRUE(ValidateClientSecurity(security).ok());
}

}  // namespace
}  // namespace reluserve
