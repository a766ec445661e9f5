#include "server/service/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace reluserve {
namespace {

// The fields of /proc/self/stat after the command name, which may itself
// hold spaces and parentheses: field 3 (state) is element 0.
std::vector<std::string> StatFields() {
  std::ifstream file("/proc/self/stat");
  std::string line;
  std::getline(file, line);
  std::vector<std::string> fields;
  const size_t end_of_name = line.rfind(')');
  if (end_of_name == std::string::npos) return fields;
  std::istringstream rest(line.substr(end_of_name + 1));
  for (std::string field; rest >> field;) fields.push_back(field);
  return fields;
}

// Seconds since the epoch at boot: /proc/stat's btime.
int64_t BootTime() {
  std::ifstream file("/proc/stat");
  for (std::string key; file >> key;) {
    if (key == "btime") {
      int64_t seconds = 0;
      file >> seconds;
      return seconds;
    }
    file.ignore(1 << 20, '\n');
  }
  return 0;
}

int64_t OpenFileCount() {
  DIR* directory = opendir("/proc/self/fd");
  if (directory == nullptr) return 0;
  int64_t count = 0;
  while (const dirent* entry = readdir(directory)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(directory);
  return count - 1;  // the directory stream's own descriptor
}

}  // namespace

void WriteProcessMetrics(PrometheusText& out) {
  const std::vector<std::string> stat = StatFields();
  // Fields 14, 15 (utime, stime), 22 (starttime) in clock ticks; 24 (rss)
  // in pages.
  constexpr size_t kUtime = 14 - 3, kStime = 15 - 3, kStart = 22 - 3,
                   kRss = 24 - 3;
  if (stat.size() > kRss) {
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    out.Family("process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
    out.Sample("process_cpu_seconds_total", {},
               (std::stod(stat[kUtime]) + std::stod(stat[kStime])) / ticks);
    out.Family("process_resident_memory_bytes", "gauge",
               "Resident memory size in bytes.");
    out.Sample(
        "process_resident_memory_bytes", {},
        std::stod(stat[kRss]) * static_cast<double>(sysconf(_SC_PAGESIZE)));
    out.Family("process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.");
    out.Sample(
        "process_start_time_seconds", {},
        static_cast<double>(BootTime()) + std::stod(stat[kStart]) / ticks);
  }
  out.Family("process_open_fds", "gauge", "Number of open file descriptors.");
  out.Sample("process_open_fds", {}, OpenFileCount());
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    out.Family("process_max_fds", "gauge",
               "Maximum number of open file descriptors.");
    out.Sample("process_max_fds", {}, static_cast<uint64_t>(files.rlim_cur));
  }
}

}  // namespace reluserve
