#ifndef RELUSERVE_TESTS_SUPPORT_HTTP_TESTING_H_
#define RELUSERVE_TESTS_SUPPORT_HTTP_TESTING_H_

// The REST protocol from the client's side, for the HTTP tests: request
// bodies in JSON or with Triton's binary tensor extension, replies split
// back into their JSON header and binary outputs.

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/support/tensor_testing.h"

namespace reluserve::testing {

inline constexpr char kHeaderLength[] = "Inference-Header-Content-Length";

struct HttpInput {
  std::string name;
  std::vector<int64_t> shape;
  std::string bytes;  // little-endian values
  std::string datatype = "FP32";
};

// A body and its headers, ready to POST.
struct HttpBody {
  std::string body;
  httplib::Headers headers;
};

// `header` gets each input's entry with binary_data_size; the body is its
// JSON then every input's bytes.
inline HttpBody BinaryBody(nlohmann::json header,
                           const std::vector<HttpInput>& inputs) {
  std::string binary;
  for (const HttpInput& input : inputs) {
    header["inputs"].push_back(
        {{"name", input.name},
         {"datatype", input.datatype},
         {"shape", input.shape},
         {"parameters", {{"binary_data_size", input.bytes.size()}}}});
    binary += input.bytes;
  }
  HttpBody out;
  out.body = header.dump();
  out.headers.emplace(kHeaderLength, std::to_string(out.body.size()));
  out.body += binary;
  return out;
}

// JSON `data` for FP32 inputs, flat.
inline HttpBody JsonBody(nlohmann::json header,
                         const std::vector<HttpInput>& inputs) {
  for (const HttpInput& input : inputs) {
    std::vector<float> values(input.bytes.size() / sizeof(float));
    std::memcpy(values.data(), input.bytes.data(), input.bytes.size());
    header["inputs"].push_back({{"name", input.name},
                                {"datatype", input.datatype},
                                {"shape", input.shape},
                                {"data", values}});
  }
  return {header.dump(), {}};
}

// A reply: its JSON header and each output's values, from JSON `data` or
// the binary section (FP32 outputs; BF16 ones as raw bytes).
struct HttpReplyParts {
  int status = 0;
  nlohmann::json header;
  std::map<std::string, std::vector<float>> values;
  std::map<std::string, std::string> binary;  // name -> bytes
};

inline HttpReplyParts SplitReply(const httplib::Result& result) {
  HttpReplyParts parts;
  if (!result) return parts;
  parts.status = result->status;
  const std::string& body = result->body;
  size_t header_bytes = body.size();
  if (result->has_header(kHeaderLength)) {
    header_bytes = std::stoul(result->get_header_value(kHeaderLength));
  }
  parts.header = nlohmann::json::parse(body.substr(0, header_bytes), nullptr,
                                       /*allow_exceptions=*/false);
  if (parts.status != 200 || !parts.header.contains("outputs")) return parts;
  size_t offset = header_bytes;
  for (const nlohmann::json& output : parts.header["outputs"]) {
    const std::string name = output["name"];
    if (output.contains("data")) {
      for (const nlohmann::json& value : output["data"]) {
        parts.values[name].push_back(value.get<float>());
      }
      continue;
    }
    const size_t size = output["parameters"]["binary_data_size"];
    const std::string bytes = body.substr(offset, size);
    offset += size;
    parts.binary[name] = bytes;
    if (output["datatype"] == "FP32") {
      std::vector<float>& values = parts.values[name];
      values.resize(bytes.size() / sizeof(float));
      std::memcpy(values.data(), bytes.data(), bytes.size());
    }
  }
  return parts;
}

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_HTTP_TESTING_H_
