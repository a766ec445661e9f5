#include "server/service/bearer_tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace reluserve {
namespace {

constexpr absl::string_view kScheme = "Bearer";

bool Sha256(absl::string_view text, unsigned char* out) {
  unsigned int size = 0;
  return EVP_Digest(text.data(), text.size(), out, &size, EVP_sha256(),
                    nullptr) == 1 &&
         size == 32;
}

// Visible ASCII, as a header value can carry it unquoted.
bool IsTokenText(absl::string_view token) {
  for (char c : token) {
    if (c <= ' ' || c > '~') return false;
  }
  return !token.empty();
}

}  // namespace

absl::StatusOr<std::shared_ptr<BearerTokens>> BearerTokens::Load(
    std::string path) {
  absl::StatusOr<std::vector<Digest>> digests = Read(path);
  if (!digests.ok()) return digests.status();
  std::shared_ptr<BearerTokens> tokens(new BearerTokens(std::move(path)));
  absl::MutexLock lock(&tokens->mutex_);
  tokens->digests_ = *std::move(digests);
  return tokens;
}

absl::StatusOr<std::vector<BearerTokens::Digest>> BearerTokens::Read(
    const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file.is_open()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the token file ", path));
  }
  std::stringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read the token file ", path));
  }
  std::vector<Digest> digests;
  std::string line;
  for (int number = 1; std::getline(text, line); ++number) {
    const absl::string_view token = absl::StripAsciiWhitespace(line);
    if (token.empty() || absl::StartsWith(token, "#")) continue;
    if (!IsTokenText(token)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "token file ", path, ", line ", number,
          ": expected one token of visible ASCII characters without spaces"));
    }
    Digest digest;
    if (!Sha256(token, digest.data())) {
      return absl::InternalError("SHA-256 failed (OpenSSL)");
    }
    digests.push_back(digest);
  }
  if (digests.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "token file ", path,
        " holds no token (one per line; lines starting with # are comments)"));
  }
  return digests;
}

absl::Status BearerTokens::Reload() {
  absl::StatusOr<std::vector<Digest>> digests = Read(path_);
  if (!digests.ok()) return digests.status();
  absl::MutexLock lock(&mutex_);
  digests_ = *std::move(digests);
  return absl::OkStatus();
}

size_t BearerTokens::size() const {
  absl::ReaderMutexLock lock(&mutex_);
  return digests_.size();
}

absl::Status BearerTokens::Check(absl::string_view authorization) const {
  authorization = absl::StripAsciiWhitespace(authorization);
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "missing 'authorization: Bearer <token>': this server requires a "
        "token (--auth-token-file)");
  }
  const size_t space = authorization.find(' ');
  const absl::string_view scheme = authorization.substr(0, space);
  if (space == absl::string_view::npos ||
      !absl::EqualsIgnoreCase(scheme, kScheme)) {
    return absl::UnauthenticatedError(
        absl::StrCat("expected 'authorization: Bearer <token>', got the "
                     "scheme '",
                     scheme.substr(0, 32), "'"));
  }
  const absl::string_view token =
      absl::StripLeadingAsciiWhitespace(authorization.substr(space));
  Digest presented;
  if (!Sha256(token, presented.data())) {
    return absl::InternalError("SHA-256 failed (OpenSSL)");
  }
  // Every digest is compared, whichever matches: the time says nothing.
  int matches = 0;
  {
    absl::ReaderMutexLock lock(&mutex_);
    for (const Digest& digest : digests_) {
      matches |=
          CRYPTO_memcmp(digest.data(), presented.data(), presented.size()) == 0;
    }
  }
  if (matches == 0) {
    return absl::UnauthenticatedError(
        "the bearer token is not one of the server's (--auth-token-file)");
  }
  return absl::OkStatus();
}

}  // namespace reluserve
