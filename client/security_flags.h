// The security flags reluserve-client and reluserve-load share: --tls-ca,
// --tls-cert, --tls-key and --token-file, into SecurityFiles, read into a
// ClientSecurity (client/client_security.h) after parsing. Header-only: the
// binaries have CLI11 (through reluserve_common), the library does not.

#ifndef RELUSERVE_CLIENT_SECURITY_FLAGS_H_
#define RELUSERVE_CLIENT_SECURITY_FLAGS_H_

#include <iostream>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client_security.h"
#include "common/command_line.h"

namespace reluserve {

inline void AddSecurityFlags(CLI::App& app, SecurityFiles& files) {
  app.add_option("--tls-ca", files.tls_ca,
                 "TLS: trust these PEM CA certificates (and no others) for "
                 "the server's certificate, which must name the target's "
                 "host or IP address")
      ->type_name("FILE");
  app.add_option("--tls-cert", files.tls_cert,
                 "Mutual TLS: present this PEM client certificate (with "
                 "--tls-key; also turns TLS on, trusting the system's roots "
                 "unless --tls-ca)")
      ->type_name("FILE");
  app.add_option("--tls-key", files.tls_key,
                 "The PEM private key of --tls-cert (unencrypted)")
      ->type_name("FILE");
  app.add_option("--token-file", files.token,
                 "Send 'authorization: Bearer <token>' on every call, the "
                 "token being the file's first line that is neither empty "
                 "nor a # comment")
      ->type_name("FILE");
}

// Reads the files into `security`. Otherwise prints why to stderr and gives
// the exit status: kExitUsage for flags that do not go together,
// kExitFailed for a file that cannot be used.
inline std::optional<int> LoadSecurityFlags(const SecurityFiles& files,
                                            absl::string_view binary,
                                            ClientSecurity& security) {
  if (const std::string problem = SecurityFlagsProblem(files);
      !problem.empty()) {
    std::cerr << binary << ": " << problem << "\nRun '" << binary
              << " --help' for usage.\n";
    return kExitUsage;
  }
  absl::StatusOr<ClientSecurity> loaded = LoadClientSecurity(files);
  if (!loaded.ok()) {
    std::cerr << binary << ": " << loaded.status().message() << "\n";
    return kExitFailed;
  }
  security = *std::move(loaded);
  return std::nullopt;
}

}  // namespace reluserve

#endif  // RELUSERVE_CLIENT_SECURITY_FLAGS_H_
