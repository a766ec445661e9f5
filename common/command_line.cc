#include "common/command_line.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <vector>

namespace reluserve {
namespace {

// Edits that turn `a` into `b`, a swap of neighbours counting as one
// ("infre" is one edit from "infer").
size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1,
                                     std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1,
                          d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::vector<std::string> SubcommandNames(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* command : app.get_subcommands({})) {
    names.push_back(command->get_name());
  }
  return names;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string joined;
  for (const std::string& name : names) {
    if (!joined.empty()) joined += ", ";
    joined += name;
  }
  return joined;
}

// CLI11 reports a misspelt subcommand as "A subcommand is required" or as an
// extra argument; say which word was not understood instead.
std::optional<std::string> UnknownSubcommand(const CLI::App& app, int argc,
                                             const char* const* argv) {
  const std::vector<std::string> names = SubcommandNames(app);
  if (names.empty()) return std::nullopt;
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word.empty() || word[0] == '-') continue;
    if (std::find(names.begin(), names.end(), word) != names.end()) {
      return std::nullopt;
    }
    std::string message = "unknown subcommand '" + word + "'";
    const std::string nearest = NearestName(word, names);
    if (!nearest.empty()) message += "; did you mean '" + nearest + "'?";
    return message + " (subcommands: " + JoinNames(names) + ")";
  }
  return std::nullopt;
}

}  // namespace

std::string VersionLine(const std::string& binary) {
  return binary + " " + RELUSERVE_VERSION;
}

void AddVersionFlag(CLI::App& app, const std::string& binary) {
  app.set_version_flag("--version", VersionLine(binary),
                       "Print the version and exit");
}

std::string NearestName(const std::string& typed,
                        const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::string::npos;
  for (const std::string& candidate : candidates) {
    const size_t distance = EditDistance(typed, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  // A typo changes a character or two; more is another word.
  const size_t allowed = std::max<size_t>(1, typed.size() / 3);
  return best_distance <= allowed ? best : std::string();
}

void AddEnvironmentNames(CLI::App& app, const std::string& prefix) {
  for (CLI::Option* option : app.get_options()) {
    if (option->get_lnames().empty() || option == app.get_help_ptr() ||
        option == app.get_version_ptr()) {
      continue;
    }
    std::string name = prefix + option->get_lnames().front();
    for (char& c : name) {
      c = c == '-'
              ? '_'
              : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    option->envname(name);
  }
}

std::string EffectiveConfiguration(const CLI::App& app) {
  std::string joined;
  std::istringstream lines(app.config_to_str(/*default_also=*/true));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#' || line[0] == '[') continue;
    if (!joined.empty()) joined += ' ';
    joined += line;
  }
  return joined;
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc,
                                    const char* const* argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::CallForVersion& version) {
    std::cout << version.what() << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& error) {
    const std::optional<std::string> unknown =
        UnknownSubcommand(app, argc, argv);
    std::cerr << app.get_name() << ": "
              << (unknown.has_value() ? *unknown : std::string(error.what()))
              << "\nRun '" << app.get_name() << " --help' for usage.\n";
    return kExitUsage;
  }
}

}  // namespace reluserve
