#ifndef RELUSERVE_TESTS_SUPPORT_FAKE_HTTP_SERVER_H_
#define RELUSERVE_TESTS_SUPPORT_FAKE_HTTP_SERVER_H_

// An in-process KServe v2 REST server for the HTTP client tests, on
// 127.0.0.1:<free port> (cpp-httplib): a model linear_relu with x [-1, 6]
// and grad_y [-1, 3] that answers every requested output (default y, with
// grad_y also grad_x, grad_weight and grad_bias) as relu(x) in x's shape
// and datatype, binary or JSON as asked. Knobs make it fail or slow down.
// With a Security, it speaks TLS (mutual TLS with a client CA) and wants a
// bearer token on every path but /v2/health/*.
//
// Thread safety: the knobs are atomics, set from the test's thread while
// the server's threads read them; what it saw is kept under a mutex.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "httplib.h"
#include "nlohmann/json.hpp"

namespace reluserve::testing {

class FakeHttpServer {
 public:
  static constexpr int64_t kK = 6;
  static constexpr int64_t kM = 3;

  // 503 {"error": "shutting down"} for every inference request, or for the
  // first this many.
  std::atomic<bool> unavailable_all{false};
  std::atomic<int> unavailable_first{0};
  std::atomic<int> delay_ms{0};
  std::atomic<bool> ready{true};
  // JSON outputs as nested arrays ([[...], [...]]) rather than flat.
  std::atomic<bool> nested_json{false};
  // No .../stats path (a server without the statistics extension).
  std::atomic<bool> statistics{true};
  std::atomic<int> infer_calls{0};

  struct Security {
    std::string cert_path, key_path;  // TLS when set
    std::string client_ca_path;       // and a client certificate it signed
    std::string token;                // 401 without "Bearer <token>"
  };

  struct Seen {
    std::string content_type;
    std::string header_length;  // Inference-Header-Content-Length
    std::string accept_encoding;
    std::string body;
  };
  Seen last_request() {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_;
  }
  // The Authorization header of every request, in order ("" when none).
  std::vector<std::string> authorizations() {
    std::lock_guard<std::mutex> lock(mutex_);
    return authorizations_;
  }
  // The client ports inference requests came from: one per connection.
  std::set<int> peers() {
    std::lock_guard<std::mutex> lock(mutex_);
    return peers_;
  }

  explicit FakeHttpServer(const Security& security = {})
      : http_(MakeServer(security)) {
    // Room for every keep-alive connection a test opens.
    http_->new_task_queue = [] { return new httplib::ThreadPool(64); };
    http_->set_keep_alive_max_count(100000);
    http_->set_tcp_nodelay(true);
    http_->Get("/v2/health/live",
               [](const httplib::Request&, httplib::Response& res) {
                 res.status = 200;
               });
    http_->Get("/v2/health/ready",
               [this](const httplib::Request&, httplib::Response& res) {
                 res.status = ready ? 200 : 503;
               });
    http_->Get("/v2", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"name":"fake","version":"0.0","extensions":)"
                      R"(["binary_tensor_data","statistics"]})",
                      "application/json");
    });
    const std::string model = R"(/v2/models/linear_relu(/versions/1)?)";
    http_->Get(model + "/ready",
               [](const httplib::Request&, httplib::Response& res) {
                 res.status = 200;
               });
    http_->Get(R"(/v2/models/([^/]+)(/versions/[^/]+)?/ready)",
               [](const httplib::Request& req, httplib::Response& res) {
                 Error(res, 404,
                       "unknown model '" + req.matches[1].str() + "'");
               });
    http_->Get(model, [](const httplib::Request&, httplib::Response& res) {
      res.set_content(Metadata().dump(), "application/json");
    });
    http_->Get(model + "/config",
               [](const httplib::Request&, httplib::Response& res) {
                 res.set_content(Config().dump(), "application/json");
               });
    http_->Get(model + "/stats", [this](const httplib::Request&,
                                        httplib::Response& res) {
      if (!statistics) return Error(res, 404, "no such path");
      res.set_content(Statistics(infer_calls).dump(), "application/json");
    });
    http_->Post(model + "/infer",
                [this](const httplib::Request& req, httplib::Response& res) {
                  Infer(req, res);
                });
    http_->set_pre_routing_handler([this, token = security.token](
                                       const httplib::Request& req,
                                       httplib::Response& res) {
      const std::string authorization = req.get_header_value("Authorization");
      {
        std::lock_guard<std::mutex> lock(mutex_);
        authorizations_.push_back(authorization);
      }
      if (token.empty() || req.path.rfind("/v2/health/", 0) == 0 ||
          authorization == "Bearer " + token) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      Error(res, 401, "missing or wrong bearer token");
      return httplib::Server::HandlerResponse::Handled;
    });
    http_->set_error_handler(
        [](const httplib::Request& req, httplib::Response& res) {
          if (res.status == 404 && res.body.empty()) {
            Error(res, 404, "no " + req.path);
          }
        });
    port_ = http_->bind_to_any_port("127.0.0.1");
    listener_ = std::thread([this] { http_->listen_after_bind(); });
    while (!http_->is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  ~FakeHttpServer() {
    http_->stop();
    listener_.join();
  }

  int port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  using json = nlohmann::json;

  static void Error(httplib::Response& res, int status,
                    const std::string& message) {
    res.status = status;
    res.set_content(json{{"error", message}}.dump(), "application/json");
  }

  static json Tensor(const char* name, std::vector<int64_t> shape) {
    return {{"name", name}, {"datatype", "FP32"}, {"shape", shape}};
  }

  static json Metadata() {
    return {{"name", "linear_relu"},
            {"versions", {"1"}},
            {"platform", "fake"},
            {"inputs", {Tensor("x", {-1, kK}), Tensor("grad_y", {-1, kM})}},
            {"outputs",
             {Tensor("y", {-1, kM}), Tensor("grad_x", {-1, kK}),
              Tensor("grad_weight", {kM, kK}), Tensor("grad_bias", {kM})}}};
  }

  static json Config() {
    auto io = [](const char* name, std::vector<int64_t> dims) {
      return json{{"name", name}, {"data_type", "TYPE_FP32"}, {"dims", dims}};
    };
    json grad_y = io("grad_y", {kM});
    grad_y["optional"] = true;
    return {{"name", "linear_relu"},
            {"platform", "fake"},
            {"max_batch_size", 8},
            {"input", {io("x", {kK}), grad_y}},
            {"output", {io("y", {kM}), io("grad_x", {kK})}},
            {"not_in_our_proto", {{"a", 1}}}};
  }

  static json Statistics(int64_t calls) {
    const json phase = {{"count", calls}, {"ns", calls * 1000}};
    return {{"model_stats",
             {{{"name", "linear_relu"},
               {"version", "1"},
               {"inference_count", calls},
               {"execution_count", calls},
               {"inference_stats",
                {{"success", phase},
                 {"queue", phase},
                 {"compute_input", phase},
                 {"compute_infer", phase},
                 {"compute_output", phase}}}}}}};
  }

  void Infer(const httplib::Request& req, httplib::Response& res) {
    const int call = ++infer_calls;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      last_ = {req.get_header_value("Content-Type"),
               req.get_header_value("Inference-Header-Content-Length"),
               req.get_header_value("Accept-Encoding"), req.body};
      peers_.insert(req.remote_port);
    }
    if (delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    }
    if (unavailable_all || call <= unavailable_first) {
      return Error(res, 503, "shutting down");
    }
    size_t header_length = req.body.size();
    if (req.has_header("Inference-Header-Content-Length")) {
      header_length =
          std::stoul(req.get_header_value("Inference-Header-Content-Length"));
    }
    const json header =
        json::parse(req.body.substr(0, header_length), nullptr, false);
    if (header.is_discarded()) return Error(res, 400, "not JSON");
    const std::string id = header.value("id", "");
    if (id == "fail-400") return Error(res, 400, "input 'x': wrong datatype");
    const json& x = header["inputs"][0];
    std::vector<float> values;
    if (x.contains("data")) {
      for (const json& value : x["data"]) values.push_back(value.get<float>());
    } else {
      const size_t bytes = x["parameters"]["binary_data_size"].get<size_t>();
      const std::string datatype = x["datatype"];
      const char* data = req.body.data() + header_length;
      for (size_t i = 0; i < bytes / (datatype == "BF16" ? 2 : 4); ++i) {
        float value = 0;
        if (datatype == "BF16") {
          const uint32_t bits =
              static_cast<uint32_t>(static_cast<uint8_t>(data[2 * i]) |
                                    static_cast<uint8_t>(data[2 * i + 1]) << 8)
              << 16;
          std::memcpy(&value, &bits, 4);
        } else {
          std::memcpy(&value, data + 4 * i, 4);
        }
        values.push_back(value);
      }
    }
    for (float& value : values) value = std::max(value, 0.0f);
    std::vector<std::string> names;
    std::vector<bool> binary;
    const bool all_binary =
        header.contains("parameters") &&
        header["parameters"].value("binary_data_output", false);
    if (header.contains("outputs")) {
      for (const json& output : header["outputs"]) {
        names.push_back(output["name"]);
        binary.push_back(output.contains("parameters") &&
                         output["parameters"].value("binary_data", false));
      }
    } else {
      names.push_back("y");
      if (header["inputs"].size() > 1) {
        names.insert(names.end(), {"grad_x", "grad_weight", "grad_bias"});
      }
      binary.assign(names.size(), all_binary);
    }
    json reply = {{"model_name", "linear_relu"}, {"model_version", "1"}};
    if (!id.empty()) reply["id"] = id;
    std::string sections;
    const std::string datatype = x["datatype"];
    for (size_t i = 0; i < names.size(); ++i) {
      json output = {
          {"name", names[i]}, {"datatype", datatype}, {"shape", x["shape"]}};
      if (binary[i]) {
        const size_t before = sections.size();
        for (float value : values) {
          uint32_t bits;
          std::memcpy(&bits, &value, 4);
          if (datatype == "BF16") {
            const uint16_t half = static_cast<uint16_t>(bits >> 16);
            sections.append(reinterpret_cast<const char*>(&half), 2);
          } else {
            sections.append(reinterpret_cast<const char*>(&bits), 4);
          }
        }
        output["parameters"] = {{"binary_data_size", sections.size() - before}};
      } else if (nested_json) {
        const int64_t columns = x["shape"].back().get<int64_t>();
        json rows = json::array();
        for (size_t at = 0; at < values.size(); at += columns) {
          rows.push_back(std::vector<float>(values.begin() + at,
                                            values.begin() + at + columns));
        }
        output["data"] = rows;
      } else {
        output["data"] = values;
      }
      reply["outputs"].push_back(output);
    }
    const std::string text = reply.dump();
    if (sections.empty()) return res.set_content(text, "application/json");
    res.set_header("Inference-Header-Content-Length",
                   std::to_string(text.size()));
    res.set_content(text + sections, "application/octet-stream");
  }

  static std::unique_ptr<httplib::Server> MakeServer(const Security& security) {
    if (security.cert_path.empty()) return std::make_unique<httplib::Server>();
    return std::make_unique<httplib::SSLServer>(
        security.cert_path.c_str(), security.key_path.c_str(),
        security.client_ca_path.empty() ? nullptr
                                        : security.client_ca_path.c_str());
  }

  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = 0;
  std::mutex mutex_;
  Seen last_;
  std::set<int> peers_;
  std::vector<std::string> authorizations_;
};

}  // namespace reluserve::testing

#endif  // RELUSERVE_TESTS_SUPPORT_FAKE_HTTP_SERVER_H_
