#ifndef RELUSERVE_SERVER_SERVICE_LOG_FORMAT_H_
#define RELUSERVE_SERVER_SERVICE_LOG_FORMAT_H_

#include <string>

namespace reluserve {

// Switches spdlog's default logger to one JSON object per line, for log
// collectors: {"time":"2026-12-01T19:44:28.156123+00:00","level":"info",
// "message":"..."}, the message escaped as JSON requires.
void UseJsonLogFormat();

// `text` as a JSON string's contents: quotes, backslashes and control
// characters escaped.
std::string JsonEscape(const std::string& text);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVICE_LOG_FORMAT_H_
