#include "client/client_security.h"

#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/tls_pem.h"

namespace reluserve {
namespace {

// Certificates, keys and tokens are small; a bound keeps /dev/zero or a
// mistaken large file from being read whole.
constexpr size_t kMaxFileBytes = 1 << 20;

struct FileClose {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

absl::Status FileError(absl::string_view flag, absl::string_view path,
                       absl::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat(flag, " ", path, ": ", why));
}

absl::StatusOr<std::string> ReadSmallFile(absl::string_view flag,
                                          const std::string& path) {
  std::unique_ptr<std::FILE, FileClose> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) {
    return FileError(
        flag, path,
        absl::StrCat("cannot open it (", std::strerror(errno), ")"));
  }
  std::string text(kMaxFileBytes + 1, '\0');
  const size_t read = std::fread(text.data(), 1, text.size(), file.get());
  if (std::ferror(file.get())) {
    return FileError(
        flag, path,
        absl::StrCat("cannot read it (", std::strerror(errno), ")"));
  }
  if (read > kMaxFileBytes) {
    return FileError(flag, path,
                     absl::StrCat("larger than ", kMaxFileBytes, " bytes"));
  }
  text.resize(read);
  return text;
}

// What gRPC metadata and HTTP headers carry as is: printable ASCII, and no
// space inside a token.
bool IsHeaderSafe(absl::string_view token) {
  for (char c : token) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

}  // namespace

std::string SecurityFlagsProblem(const SecurityFiles& files) {
  if (files.tls_cert.empty() != files.tls_key.empty()) {
    return "--tls-cert and --tls-key go together: a client certificate "
           "needs its private key";
  }
  return "";
}

std::string TokenFromFile(absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty() && line[0] != '#') return std::string(line);
  }
  return "";
}

std::string BearerValue(absl::string_view token) {
  return absl::StrCat("Bearer ", token);
}

absl::Status ValidateClientSecurity(const ClientSecurity& security) {
  if (security.cert_pem.empty() != security.key_pem.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate and its private key go together");
  }
  return absl::OkStatus();
}

absl::StatusOr<ClientSecurity> LoadClientSecurity(const SecurityFiles& files) {
  if (std::string problem = SecurityFlagsProblem(files); !problem.empty()) {
    return absl::InvalidArgumentError(problem);
  }
  ClientSecurity security;
  security.tls = files.tls();
  if (!files.tls_ca.empty()) {
    absl::StatusOr<std::string> pem = ReadSmallFile("--tls-ca", files.tls_ca);
    if (!pem.ok()) return pem.status();
    if (tls::ReadCertificates(*pem).empty()) {
      return FileError("--tls-ca", files.tls_ca, "no PEM certificate in it");
    }
    security.ca_pem = *std::move(pem);
  }
  if (!files.tls_cert.empty()) {
    absl::StatusOr<std::string> cert =
        ReadSmallFile("--tls-cert", files.tls_cert);
    if (!cert.ok()) return cert.status();
    std::vector<tls::Certificate> chain = tls::ReadCertificates(*cert);
    if (chain.empty()) {
      return FileError("--tls-cert", files.tls_cert,
                       "no PEM certificate in it");
    }
    absl::StatusOr<std::string> key = ReadSmallFile("--tls-key", files.tls_key);
    if (!key.ok()) return key.status();
    tls::PrivateKey private_key = tls::ReadPrivateKey(*key);
    if (private_key == nullptr) {
      return FileError("--tls-key", files.tls_key,
                       "no unencrypted PEM private key in it");
    }
    if (X509_check_private_key(chain.front().get(), private_key.get()) != 1) {
      tls::TakeFirstError();
      return FileError(
          "--tls-key", files.tls_key,
          absl::StrCat("not the key of the certificate in ", files.tls_cert));
    }
    security.cert_pem = *std::move(cert);
    security.key_pem = *std::move(key);
  }
  if (!files.token.empty()) {
    absl::StatusOr<std::string> text =
        ReadSmallFile("--token-file", files.token);
    if (!text.ok()) return text.status();
    security.token = TokenFromFile(*text);
    if (security.token.empty()) {
      return FileError("--token-file", files.token,
                       "no token in it (the first line that is neither empty "
                       "nor a # comment)");
    }
    if (!IsHeaderSafe(security.token)) {
      return FileError("--token-file", files.token,
                       "the token holds a space or a character that is not "
                       "printable ASCII, which no header can carry");
    }
  }
  return security;
}

}  // namespace reluserve
