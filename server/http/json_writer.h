#ifndef RELUSERVE_SERVER_HTTP_JSON_WRITER_H_
#define RELUSERVE_SERVER_HTTP_JSON_WRITER_H_

#include <cstddef>
#include <string>

#include "google/protobuf/message.h"

namespace reluserve {

// `message` as the REST protocol writes it (as Triton's HTTP front end
// does): proto field names, 64-bit integers as JSON numbers, enums by name,
// maps as objects; scalars always present, unset sub-messages left out.
std::string ProtoToJson(const google::protobuf::Message& message);
// Each message of repeated field `field` of `message`, as a JSON array.
std::string RepeatedToJson(const google::protobuf::Message& message,
                           const std::string& field);

// Appends `count` floats as a flat JSON array, each in its shortest form
// that reads back to the same float. NaN and infinities are written as
// NaN, Infinity and -Infinity, which Python's json, rapidjson (as
// tritonclient uses it) and JavaScript's JSON5 accept and strict JSON has
// no way to say.
void AppendJsonFloats(const float* values, size_t count, std::string& out);

// `text` as a JSON string literal, quotes included.
std::string JsonString(const std::string& text);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_HTTP_JSON_WRITER_H_
