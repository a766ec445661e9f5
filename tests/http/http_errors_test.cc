// Every malformed-request case of the gRPC suite (tests/service), and the
// REST protocol's own, over real HTTP: the status API.md names, an
// {"error": "..."} body naming the tensor, what was expected and what came,
// and a server that goes on serving. Also the body bounds and draining.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "httplib.h"
#include "nlohmann/json.hpp"
#include "server/core/weights.h"
#include "server/http/http_front_end.h"
#include "server/service/server.h"
#include "tests/support/http_testing.h"
#include "tests/support/model_testing.h"
#include "tests/support/tensor_testing.h"

namespace reluserve {
namespace {

using ::reluserve::testing::BinaryBody;
using ::reluserve::testing::FloatBytes;
using ::reluserve::testing::HttpBody;
using ::reluserve::testing::HttpInput;
using ::reluserve::testing::JsonBody;
using ::reluserve::testing::RandomValues;
using json = nlohmann::json;

constexpr int64_t kIn = 37, kOut = 13;

std::vector<HttpInput> Inputs(int64_t batch) {
  return {{"x", {batch, kIn}, FloatBytes(RandomValues(batch * kIn, 1))},
          {"grad_y", {batch, kOut}, FloatBytes(RandomValues(batch * kOut, 2))}};
}

struct BadRequest {
  std::string name;
  std::function<HttpBody()> body;
  int status;
  std::vector<std::string> mentions;
  std::string path = "/v2/models/linear_relu/infer";
};

// A binary request whose JSON header `spoil` changes after it is built.
HttpBody SpoiledBinary(const std::function<void(json&)>& spoil,
                       std::vector<HttpInput> inputs = Inputs(2)) {
  HttpBody body = BinaryBody({}, inputs);
  const size_t header_bytes =
      std::stoul(body.headers.find(testing::kHeaderLength)->second);
  json header = json::parse(body.body.substr(0, header_bytes));
  spoil(header);
  const std::string binary = body.body.substr(header_bytes);
  body.body = header.dump();
  body.headers = {{testing::kHeaderLength, std::to_string(body.body.size())}};
  body.body += binary;
  return body;
}

HttpBody SpoiledJson(const std::function<void(json&)>& spoil) {
  json header = json::parse(JsonBody({}, Inputs(2)).body);
  spoil(header);
  return {header.dump(), {}};
}

HttpBody Raw(std::string body) { return {std::move(body), {}}; }

// Sends `request` as it is on a fresh connection (then, if `half_close`,
// ends the sending side: nothing more comes) and returns what comes back
// before the server closes it or 10 s pass.
std::string RawExchange(int port, const std::string& request,
                        bool half_close = true) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ==
          0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    if (half_close) shutdown(fd, SHUT_WR);
    timeval timeout{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    char chunk[4096];
    ssize_t got = 0;
    while ((got = recv(fd, chunk, sizeof(chunk), 0)) > 0) {
      reply.append(chunk, static_cast<size_t>(got));
    }
  }
  close(fd);
  return reply;
}

class HttpErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Server::Options options;
    options.port = 0;
    options.http_port = 0;
    options.model.max_batch = 4096;
    options.scheduling.max_batch_rows = 4096;
    absl::StatusOr<std::unique_ptr<Server>> server = Server::Start(
        options, testing::SingleLayerModel(MakeDefaultWeights(kIn, kOut, 5)));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    client_ =
        std::make_unique<httplib::Client>("127.0.0.1", server_->http_port());
    client_->set_read_timeout(20, 0);
  }

  httplib::Result Post(const std::string& path, const HttpBody& body) {
    return client_->Post(path.c_str(), body.headers, body.body,
                         "application/json");
  }

  void ExpectServerStillServes() {
    const httplib::Result result =
        Post("/v2/models/linear_relu/infer", BinaryBody({}, Inputs(2)));
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 200) << result->body;
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpErrorsTest, MalformedRequestsGetTheContractStatus) {
  const std::vector<BadRequest> cases = {
      // The twins of tests/service/inference_service_test.cc's cases.
      {"unknown model",
       [] { return BinaryBody({}, Inputs(2)); },
       404,
       {"resnet50", "linear_relu"},
       "/v2/models/resnet50/infer"},
      {"unknown version",
       [] { return BinaryBody({}, Inputs(2)); },
       404,
       {"'3'", "version 1"},
       "/v2/models/linear_relu/versions/3/infer"},
      {"missing x",
       [] { return BinaryBody({}, {Inputs(2)[1]}); },
       400,
       {"missing input 'x'", "[N, 37]"}},
      {"unknown input",
       [] {
         return SpoiledBinary([](json& h) { h["inputs"][1]["name"] = "z"; });
       },
       400,
       {"'z'", "grad_y"}},
      {"unknown output",
       [] {
         return SpoiledBinary([](json& h) {
           h["outputs"] = {{{"name", "logits"}}};
         });
       },
       400,
       {"'logits'", "grad_weight"}},
      {"wrong datatype",
       [] {
         return SpoiledBinary(
             [](json& h) { h["inputs"][0]["datatype"] = "FP16"; });
       },
       400,
       {"'x'", "FP32", "FP16"}},
      {"wrong rank",
       [] {
         return SpoiledBinary([](json& h) { h["inputs"][0]["shape"] = {74}; });
       },
       400,
       {"'x'", "[N, 37]", "[74]"}},
      {"wrong features",
       [] {
         return SpoiledBinary([](json& h) { h["inputs"][0]["shape"][1] = 36; });
       },
       400,
       {"'x'", "37", "[2, 36]"}},
      {"wrong grad_y shape",
       [] {
         return SpoiledBinary([](json& h) { h["inputs"][1]["shape"][1] = 12; });
       },
       400,
       {"'grad_y'", "[2, 13]", "[2, 12]"}},
      {"byte count",
       [] {
         std::vector<HttpInput> inputs = Inputs(2);
         inputs[0].bytes.pop_back();
         return BinaryBody({}, inputs);
       },
       400,
       {"'x'", "296 bytes", "295"}},
      {"value count in JSON",
       [] {
         return SpoiledJson([](json& h) { h["inputs"][0]["data"].erase(0); });
       },
       400,
       {"'x'", "74 values", "73"}},
      {"data and binary both (raw and typed mixed)",
       [] {
         return SpoiledBinary([](json& h) { h["inputs"][1]["data"] = {1.0}; });
       },
       400,
       {"'grad_y'", "got both"}},
      {"binary_data_size beyond the body (raw count)",
       [] {
         return SpoiledBinary([](json& h) {
           h["inputs"][1]["parameters"]["binary_data_size"] = 2 * kOut * 4 + 8;
         });
       },
       400,
       {"'grad_y'", "goes beyond", "104"}},
      {"bytes beyond the declared binary inputs",
       [] {
         HttpBody body = BinaryBody({}, Inputs(2));
         body.body += "tail";
         return body;
       },
       400,
       {"4 bytes", "beyond"}},
      {"N = 0",
       [] {
         return BinaryBody({}, {{"x", {0, kIn}, std::string()}});
       },
       400,
       {"'x'", "N >= 1", "[0, 37]"}},
      {"negative dimension",
       [] {
         return SpoiledBinary([](json& h) { h["inputs"][0]["shape"][0] = -2; });
       },
       400,
       {"'x'", "non-negative", "-2"}},
      {"shape overflow",
       [] {
         return SpoiledBinary([](json& h) {
           h["inputs"][0]["shape"] = {int64_t{1} << 40, int64_t{1} << 40};
         });
       },
       400,
       {"'x'", "overflows"}},
      {"gradient without grad_y",
       [] {
         return SpoiledBinary(
             [](json& h) {
               h["outputs"] = {{{"name", "grad_x"}}};
             },
             {Inputs(2)[0]});
       },
       400,
       {"'grad_x'", "'grad_y'"}},
      {"data that is not numbers (typed field of another datatype)",
       [] {
         return SpoiledJson([](json& h) { h["inputs"][0]["data"][3] = "one"; });
       },
       400,
       {"'x'", "numbers", "a string", "value 3"}},
      {"duplicate input",
       [] {
         return SpoiledBinary([](json& h) { h["inputs"][1]["name"] = "x"; });
       },
       400,
       {"'x'", "twice"}},
      {"duplicate output",
       [] {
         return SpoiledBinary([](json& h) {
           h["outputs"] = {{{"name", "y"}}, {{"name", "y"}}};
         });
       },
       400,
       {"'y'", "twice"}},
      {"batch above maximum",
       [] { return BinaryBody({}, Inputs(5000)); },
       400,
       {"5000", "maximum", "4096"}},
      // The REST protocol's own.
      {"not JSON",
       [] { return Raw("{\"inputs\": [}"); },
       400,
       {"not valid JSON"}},
      {"not an object",
       [] { return Raw("[1, 2]"); },
       400,
       {"JSON object", "an array"}},
      {"no inputs", [] { return Raw("{\"id\": \"a\"}"); }, 400, {"'inputs'"}},
      {"inputs not an array",
       [] { return Raw("{\"inputs\": 3}"); },
       400,
       {"'inputs'", "an array", "a number"}},
      {"input without a name",
       [] {
         return SpoiledJson([](json& h) { h["inputs"][0].erase("name"); });
       },
       400,
       {"inputs[0]", "'name'"}},
      {"input without a shape",
       [] {
         return SpoiledJson([](json& h) { h["inputs"][0].erase("shape"); });
       },
       400,
       {"'x'", "'shape'"}},
      {"input without data",
       [] {
         return SpoiledJson([](json& h) { h["inputs"][0].erase("data"); });
       },
       400,
       {"'x'", "got neither"}},
      {"shape of strings",
       [] {
         return SpoiledJson([](json& h) {
           h["inputs"][0]["shape"] = {"2", "37"};
         });
       },
       400,
       {"'x'", "non-negative integers"}},
      {"binary_data_size negative",
       [] {
         return SpoiledBinary([](json& h) {
           h["inputs"][0]["parameters"]["binary_data_size"] = -1;
         });
       },
       400,
       {"'x'", "binary_data_size"}},
      {"id not a string",
       [] { return SpoiledJson([](json& h) { h["id"] = 7; }); },
       400,
       {"'id'", "a string"}},
      {"binary_data not a boolean",
       [] {
         return SpoiledBinary([](json& h) {
           h["outputs"] = {
               {{"name", "y"}, {"parameters", {{"binary_data", 1}}}}};
         });
       },
       400,
       {"'y'", "binary_data", "a boolean"}},
      {"header length not a number",
       [] {
         HttpBody body = BinaryBody({}, Inputs(2));
         body.headers = {{testing::kHeaderLength, "12a"}};
         return body;
       },
       400,
       {"Inference-Header-Content-Length", "12a"}},
      {"header length beyond the body",
       [] {
         HttpBody body = BinaryBody({}, Inputs(2));
         body.headers = {
             {testing::kHeaderLength, std::to_string(body.body.size() + 1)}};
         return body;
       },
       400,
       {"Inference-Header-Content-Length", "at most"}},
      {"header length cutting the JSON",
       [] {
         HttpBody body = BinaryBody({}, Inputs(2));
         body.headers = {{testing::kHeaderLength, "10"}};
         return body;
       },
       400,
       {"not valid JSON"}},
  };
  for (const BadRequest& bad : cases) {
    const httplib::Result result = Post(bad.path, bad.body());
    ASSERT_TRUE(result) << bad.name << ": "
                        << httplib::to_string(result.error());
    EXPECT_EQ(result->status, bad.status) << bad.name << ": " << result->body;
    const json body = json::parse(result->body, nullptr, false);
    ASSERT_TRUE(body.is_object() && body.contains("error"))
        << bad.name << ": " << result->body;
    const std::string message = body["error"];
    for (const std::string& mention : bad.mentions) {
      EXPECT_NE(message.find(mention), std::string::npos)
          << bad.name << ": '" << message << "' lacks '" << mention << "'";
    }
    ExpectServerStillServes();
  }
}

TEST_F(HttpErrorsTest, BodiesAreBoundedLikeGrpcMessages) {
  const int64_t limit = server_->max_receive_bytes();
  // Binary: the gRPC limit.
  HttpBody binary = BinaryBody({}, Inputs(2));
  binary.body.resize(static_cast<size_t>(limit) + 1, '\0');
  httplib::Result result = Post("/v2/models/linear_relu/infer", binary);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 413) << result->body;
  EXPECT_NE(result->body.find(std::to_string(limit)), std::string::npos)
      << result->body;
  // JSON: 16 times it. Above, cpp-httplib answers from the headers alone.
  const std::string reply =
      RawExchange(server_->http_port(),
                  "POST /v2/models/linear_relu/infer HTTP/1.1\r\nHost: t\r\n"
                  "Connection: close\r\n"
                  "Content-Length: " +
                      std::to_string(16 * limit + 1) + "\r\n\r\n",
                  /*half_close=*/false);
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
  EXPECT_NE(reply.find(std::to_string(16 * limit)), std::string::npos) << reply;
  // Just below, the body is read (and found invalid).
  std::string big(static_cast<size_t>(16 * limit), ' ');
  result = Post("/v2/models/linear_relu/infer", Raw(big));
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 400) << result->body;
  ExpectServerStillServes();
}

// Broken HTTP itself: a 4xx or a closed connection, and the server goes on.
TEST_F(HttpErrorsTest, MalformedHttpNeverTakesTheServerDown) {
  const std::string infer = "POST /v2/models/linear_relu/infer HTTP/1.1\r\n";
  const std::string requests[] = {
      "GARBAGE\r\n\r\n",
      std::string("\x00\x01\x02\xff\xfe\r\n\r\n", 9),
      infer + "Content-Length: abc\r\nConnection: close\r\n\r\n{}",
      infer + "Content-Length: -5\r\nConnection: close\r\n\r\n",
      infer + "Content-Length: 99999999999999999999999\r\n\r\n",
      infer + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n",
      infer +
          "Inference-Header-Content-Length: -1\r\nContent-Length: 2\r\n"
          "Connection: close\r\n\r\n{}",
      infer + "X-Long: " + std::string(200000, 'a') + "\r\n\r\n",
      "GET /v2/models/%ZZ%/ready HTTP/1.1\r\nConnection: close\r\n\r\n",
      "GET /v2/models/" + std::string(10000, 'm') +
          " HTTP/1.1\r\nConnection: close\r\n\r\n",
  };
  for (const std::string& request : requests) {
    const std::string reply = RawExchange(server_->http_port(), request);
    EXPECT_TRUE(reply.empty() || reply.rfind("HTTP/1.1 4", 0) == 0)
        << request.substr(0, 80) << " -> " << reply.substr(0, 200);
    ExpectServerStillServes();
  }
}

// A draining runtime: not ready, and inference gets 503.
TEST(HttpDrainingTest, ReportsNotReadyAndRefusesInference) {
  std::vector<ServedModelSpec> models(1);
  models[0].model = testing::SingleLayerModel(MakeDefaultWeights(kIn, kOut, 1));
  auto runtime = std::make_shared<InferenceRuntime>(std::move(models));
  HttpFrontEnd::Options options;
  options.port = 0;
  absl::StatusOr<std::unique_ptr<HttpFrontEnd>> front_end =
      HttpFrontEnd::Start(options, runtime);
  ASSERT_TRUE(front_end.ok()) << front_end.status();
  httplib::Client client("127.0.0.1", (*front_end)->port());
  EXPECT_EQ(client.Get("/v2/health/ready")->status, 200);
  runtime->StartDraining();
  EXPECT_EQ(client.Get("/v2/health/ready")->status, 503);
  EXPECT_EQ(client.Get("/v2/health/live")->status, 200);
  EXPECT_EQ(client.Get("/v2/models/linear_relu/ready")->status, 503);
  const HttpBody body = BinaryBody({}, Inputs(1));
  const httplib::Result result =
      client.Post("/v2/models/linear_relu/infer", body.headers, body.body,
                  "application/octet-stream");
  ASSERT_TRUE(result);
  EXPECT_EQ(result->status, 503);
  EXPECT_NE(result->body.find("shutting down"), std::string::npos)
      << result->body;
  (*front_end)->Stop();
}

}  // namespace
}  // namespace reluserve
