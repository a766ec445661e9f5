// Command-line conventions shared by reluserve-server, reluserve-client and
// reluserve-load: one --version, one way to report a usage error, and one
// table of exit statuses (the README, "Try it").

#ifndef RELUSERVE_COMMON_COMMAND_LINE_H_
#define RELUSERVE_COMMON_COMMAND_LINE_H_

#include <optional>
#include <string>

#include "CLI/CLI.hpp"

namespace reluserve {

// Exit statuses. Each binary uses the ones that apply to it.
inline constexpr int kExitOk = 0;
// Something failed at run time: an RPC, a file, start-up, or (health) the
// server answered but is not ready.
inline constexpr int kExitFailed = 1;
// The command line was wrong; nothing was done.
inline constexpr int kExitUsage = 2;
// reluserve-load: measured, but some requests failed or time ran out.
inline constexpr int kExitDegraded = 3;
// The server could not be reached, or went away during the run.
inline constexpr int kExitUnreachable = 4;

// "reluserve-load 0.1.0": the binary's name and the project's version.
std::string VersionLine(const std::string& binary);

// Adds --version to `app`, printing VersionLine(binary).
void AddVersionFlag(CLI::App& app, const std::string& binary);

// Lets every long option of `app` (not --help or --version) also come from
// the environment variable `prefix` + its name in upper case with '-' as
// '_': --max-batch is RELUSERVE_MAX_BATCH for prefix "RELUSERVE_". A value
// on the command line wins.
void AddEnvironmentNames(CLI::App& app, const std::string& prefix);

// The options' effective values (given or default), "name=value" joined by
// spaces, for one start-up log line.
std::string EffectiveConfiguration(const CLI::App& app);

// Parses argv into `app`. Returns an exit status when the program should
// stop now: kExitOk after --help or --version (printed to stdout), or
// kExitUsage after a usage error (printed to stderr, with the subcommand a
// misspelt one probably meant, and a pointer to --help). std::nullopt when
// the program should go on.
std::optional<int> ParseCommandLine(CLI::App& app, int argc,
                                    const char* const* argv);

// The name among `candidates` nearest to `typed` by edit distance, if it is
// near enough to be a likely typo; empty otherwise.
std::string NearestName(const std::string& typed,
                        const std::vector<std::string>& candidates);

}  // namespace reluserve

#endif  // RELUSERVE_COMMON_COMMAND_LINE_H_
