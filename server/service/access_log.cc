#include "server/service/access_log.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/service/log_format.h"
#include "spdlog/sinks/basic_file_sink.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace reluserve {

absl::StatusOr<std::unique_ptr<AccessLog>> AccessLog::Open(
    const std::string& path, bool json) {
  spdlog::sink_ptr sink;
  try {
    if (path == "-") {
      sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
    } else {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(
          path, /*truncate=*/false);
    }
  } catch (const spdlog::spdlog_ex& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open the access log ", path, ": ", e.what()));
  }
  auto logger = std::make_shared<spdlog::logger>("access", std::move(sink));
  logger->set_pattern(json ? R"({"time":"%Y-%m-%dT%H:%M:%S.%f%z",%v})"
                           : "%Y-%m-%dT%H:%M:%S.%f%z %v");
  logger->set_level(spdlog::level::info);
  logger->flush_on(spdlog::level::err);
  spdlog::drop("access");
  spdlog::register_logger(logger);
  // Buffered writes, flushed by spdlog's thread: no flush per request.
  spdlog::flush_every(std::chrono::seconds(1));
  return std::unique_ptr<AccessLog>(new AccessLog(std::move(logger), json));
}

AccessLog::AccessLog(std::shared_ptr<spdlog::logger> logger, bool json)
    : logger_(std::move(logger)), json_(json) {}

AccessLog::~AccessLog() {
  logger_->flush();
  spdlog::drop("access");
}

void AccessLog::Write(const AccessRecord& record) {
  const std::string code = absl::StatusCodeToString(record.code);
  if (json_) {
    logger_->info(
        R"("method":"{}","model":"{}","version":"{}","id":"{}","rows":{},)"
        R"("code":"{}","us":{},"peer":"{}")",
        record.method, JsonEscape(std::string(record.model)),
        JsonEscape(std::string(record.version)),
        JsonEscape(std::string(record.id)), record.rows, code,
        record.microseconds, JsonEscape(record.peer));
  } else {
    // Escaped as in JSON: a client's name cannot start a line of its own.
    logger_->info("{} model={} version={} id={} rows={} code={} us={} peer={}",
                  record.method, JsonEscape(std::string(record.model)),
                  JsonEscape(std::string(record.version)),
                  JsonEscape(std::string(record.id)), record.rows, code,
                  record.microseconds, record.peer);
  }
}

}  // namespace reluserve
