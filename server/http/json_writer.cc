#include "server/http/json_writer.h"

#include <charconv>
#include <cmath>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "nlohmann/json.hpp"

namespace reluserve {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

nlohmann::json MessageToJson(const Message& message);

nlohmann::json ScalarToJson(const Message& message,
                            const FieldDescriptor* field, int index) {
  const Reflection& r = *message.GetReflection();
  const bool repeated = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return repeated ? r.GetRepeatedInt32(message, field, index)
                      : r.GetInt32(message, field);
    case FieldDescriptor::CPPTYPE_INT64:
      return repeated ? r.GetRepeatedInt64(message, field, index)
                      : r.GetInt64(message, field);
    case FieldDescriptor::CPPTYPE_UINT32:
      return repeated ? r.GetRepeatedUInt32(message, field, index)
                      : r.GetUInt32(message, field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return repeated ? r.GetRepeatedUInt64(message, field, index)
                      : r.GetUInt64(message, field);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return repeated ? r.GetRepeatedDouble(message, field, index)
                      : r.GetDouble(message, field);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return repeated ? r.GetRepeatedFloat(message, field, index)
                      : r.GetFloat(message, field);
    case FieldDescriptor::CPPTYPE_BOOL:
      return repeated ? r.GetRepeatedBool(message, field, index)
                      : r.GetBool(message, field);
    case FieldDescriptor::CPPTYPE_ENUM:
      return (repeated ? r.GetRepeatedEnum(message, field, index)
                       : r.GetEnum(message, field))
          ->name();
    case FieldDescriptor::CPPTYPE_STRING:
      return repeated ? r.GetRepeatedString(message, field, index)
                      : r.GetString(message, field);
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageToJson(repeated
                               ? r.GetRepeatedMessage(message, field, index)
                               : r.GetMessage(message, field));
  }
  return nullptr;
}

nlohmann::json MessageToJson(const Message& message) {
  const Reflection& reflection = *message.GetReflection();
  const google::protobuf::Descriptor& descriptor = *message.GetDescriptor();
  nlohmann::json out = nlohmann::json::object();
  for (int f = 0; f < descriptor.field_count(); ++f) {
    const FieldDescriptor* field = descriptor.field(f);
    if (field->is_map()) {
      nlohmann::json map = nlohmann::json::object();
      const FieldDescriptor* key = field->message_type()->map_key();
      const FieldDescriptor* value = field->message_type()->map_value();
      for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
        const Message& entry = reflection.GetRepeatedMessage(message, field, i);
        nlohmann::json key_json = ScalarToJson(entry, key, 0);
        map[key_json.is_string() ? key_json.get<std::string>()
                                 : key_json.dump()] =
            ScalarToJson(entry, value, 0);
      }
      out[field->name()] = std::move(map);
    } else if (field->is_repeated()) {
      nlohmann::json values = nlohmann::json::array();
      for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
        values.push_back(ScalarToJson(message, field, i));
      }
      out[field->name()] = std::move(values);
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE ||
               field->real_containing_oneof() != nullptr) {
      if (reflection.HasField(message, field)) {
        out[field->name()] = ScalarToJson(message, field, 0);
      }
    } else {
      out[field->name()] = ScalarToJson(message, field, 0);
    }
  }
  return out;
}

}  // namespace

std::string ProtoToJson(const Message& message) {
  return MessageToJson(message).dump();
}

std::string RepeatedToJson(const Message& message, const std::string& field) {
  const FieldDescriptor* descriptor =
      message.GetDescriptor()->FindFieldByName(field);
  nlohmann::json values = nlohmann::json::array();
  if (descriptor != nullptr && descriptor->is_repeated()) {
    for (int i = 0; i < message.GetReflection()->FieldSize(message, descriptor);
         ++i) {
      values.push_back(ScalarToJson(message, descriptor, i));
    }
  }
  return values.dump();
}

void AppendJsonFloats(const float* values, size_t count, std::string& out) {
  out.push_back('[');
  char text[32];
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) out.push_back(',');
    const float value = values[i];
    if (std::isnan(value)) {
      out.append("NaN");
    } else if (std::isinf(value)) {
      out.append(value > 0 ? "Infinity" : "-Infinity");
    } else {
      const auto written = std::to_chars(text, text + sizeof(text), value);
      out.append(text, written.ptr);
    }
  }
  out.push_back(']');
}

std::string JsonString(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false,
                                   nlohmann::json::error_handler_t::replace);
}

}  // namespace reluserve
