// BearerTokens: the token file's format, the header's form, reloads, and
// checks running while a reload replaces the tokens.

#include "server/service/bearer_tokens.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/support/file_testing.h"

namespace reluserve {
namespace {

class BearerTokensTest : public testing::TempDirTest {
 protected:
  std::shared_ptr<BearerTokens> Load(const std::string& text) {
    absl::StatusOr<std::shared_ptr<BearerTokens>> tokens =
        BearerTokens::Load(WriteFile(text, "tokens"));
    EXPECT_TRUE(tokens.ok()) << tokens.status();
    return tokens.ok() ? *tokens : nullptr;
  }
  absl::Status LoadError(const std::string& text) {
    return BearerTokens::Load(WriteFile(text, "tokens")).status();
  }
};

TEST_F(BearerTokensTest, ReadsOneTokenPerLineSkippingCommentsAndBlanks) {
  std::shared_ptr<BearerTokens> tokens =
      Load("# production tokens\n\n  alpha-1 \r\n\t# old: retired\nbeta.2~\n");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->size(), 2u);
  EXPECT_TRUE(tokens->Check("Bearer alpha-1").ok());
  EXPECT_TRUE(tokens->Check("Bearer beta.2~").ok());
  EXPECT_FALSE(tokens->Check("Bearer # old: retired").ok());
  EXPECT_FALSE(tokens->Check("Bearer old:").ok());
}

TEST_F(BearerTokensTest, TheSchemeIsCaseInsensitive) {
  std::shared_ptr<BearerTokens> tokens = Load("alpha\n");
  for (const char* value :
       {"Bearer alpha", "bearer alpha", "BEARER alpha", "  Bearer   alpha  "}) {
    EXPECT_TRUE(tokens->Check(value).ok()) << value;
  }
}

TEST_F(BearerTokensTest, RefusalsAreUnauthenticatedAndSayWhatIsWrong) {
  std::shared_ptr<BearerTokens> tokens = Load("alpha\n");
  const struct {
    const char* authorization;
    const char* says;
  } cases[] = {
      {"", "missing 'authorization: Bearer <token>'"},
      {"   ", "missing 'authorization: Bearer <token>'"},
      {"alpha", "got the scheme 'alpha'"},
      {"Bearer", "got the scheme 'Bearer'"},
      {"Basic YWxwaGE=", "got the scheme 'Basic'"},
      {"Bearer alph", "not one of the server's"},
      {"Bearer alphaa", "not one of the server's"},
      {"Bearer ALPHA", "not one of the server's"},
      {"Bearer alpha alpha", "not one of the server's"},
  };
  for (const auto& c : cases) {
    const absl::Status status = tokens->Check(c.authorization);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated)
        << "'" << c.authorization << "'";
    EXPECT_TRUE(absl::StrContains(status.message(), c.says))
        << "'" << c.authorization << "': " << status;
  }
}

TEST_F(BearerTokensTest, AFileWithoutATokenOrWithAStrayLineIsRefused) {
  for (const char* text : {"", "\n\n", "# only a comment\n"}) {
    const absl::Status status = LoadError(text);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_TRUE(absl::StrContains(status.message(), PathFor("tokens")))
        << status;
    EXPECT_TRUE(absl::StrContains(status.message(), "holds no token"))
        << status;
  }
  const absl::Status spaced = LoadError("alpha\ntwo words\n");
  EXPECT_TRUE(absl::StrContains(spaced.message(), "line 2")) << spaced;
  const absl::Status missing =
      BearerTokens::Load(PathFor("no-such-file")).status();
  EXPECT_FALSE(missing.ok());
  EXPECT_TRUE(absl::StrContains(missing.message(), PathFor("no-such-file")))
      << missing;
}

TEST_F(BearerTokensTest, ReloadRotatesAndAFailedReloadKeepsTheOldTokens) {
  std::shared_ptr<BearerTokens> tokens = Load("alpha\n");
  WriteFile("beta\ngamma\n", "tokens");
  ASSERT_TRUE(tokens->Reload().ok());
  EXPECT_FALSE(tokens->Check("Bearer alpha").ok());
  EXPECT_TRUE(tokens->Check("Bearer beta").ok());
  EXPECT_TRUE(tokens->Check("Bearer gamma").ok());
  WriteFile("# emptied by mistake\n", "tokens");
  EXPECT_FALSE(tokens->Reload().ok());
  EXPECT_TRUE(tokens->Check("Bearer beta").ok());
  EXPECT_EQ(tokens->size(), 2u);
}

TEST_F(BearerTokensTest, ChecksDuringReloadsSeeOneSetOrTheOther) {
  std::shared_ptr<BearerTokens> tokens = Load("a\nshared\n");
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0};
  std::vector<std::thread> checkers;
  for (int i = 0; i < 3; ++i) {
    checkers.emplace_back([&] {
      for (int n = 0; n < 200000 && !stop.load(); ++n) {
        if (!tokens->Check("Bearer shared").ok()) refused.fetch_add(1);
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    WriteFile(round % 2 == 0 ? "shared\nb\n" : "a\nshared\n", "tokens");
    ASSERT_TRUE(tokens->Reload().ok());
  }
  stop = true;
  for (std::thread& checker : checkers) checker.join();
  EXPECT_EQ(refused.load(), 0);
}

}  // namespace
}  // namespace reluserve
