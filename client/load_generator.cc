#include "client/load_generator.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/http_client.h"
#include "client/load_driver.h"
#include "client/load_http_calls.h"
#include "client/load_step.h"
#include "grpcpp/generic/generic_stub.h"

namespace reluserve {
namespace {

using load_internal::Clock;
using load_internal::FromSeconds;

// Metadata gets at least this long, whatever --timeout-ms.
constexpr auto kControlDeadline = std::chrono::seconds(1);
// Statistics calls get at least this long, whatever --timeout-ms.
constexpr auto kStatsDeadline = std::chrono::seconds(5);

absl::Status Range(const char* name, double value, double min, double max) {
  if (value >= min && value <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      name, " is ", value, "; it must be in [", min, ", ", max, "]"));
}

// What the control calls (metadata, config, statistics) of a run need.
ClientOptions ControlOptions(const LoadOptions& options,
                             std::chrono::milliseconds deadline) {
  ClientOptions control;
  control.target = options.target;
  control.channel = options.channel;
  control.deadline = deadline;
  control.model_name = options.model_name;
  control.model_version = options.model_version;
  control.http_tensors = options.http_tensors;
  return control;
}

std::chrono::milliseconds ControlDeadline(const LoadOptions& options) {
  return std::max<std::chrono::milliseconds>(options.timeout, kControlDeadline);
}

// Opens `options.channels` channels into `transport`, waits for all of them
// to connect, and gives a Client over the first.
absl::StatusOr<std::shared_ptr<const InferenceClient>> ConnectGrpc(
    const LoadOptions& options, load_internal::Transport& transport) {
  ChannelOptions channel = options.channel;
  channel.http_proxy = false;
  for (int i = 0; i < options.channels; ++i) {
    channel.connection_index = i;
    transport.channels.push_back(CreateClientChannel(options.target, channel));
    transport.stubs.push_back(
        std::make_unique<grpc::GenericStub>(transport.channels.back()));
  }
  // One deadline for all channels, connecting side by side.
  const auto connected_by =
      std::chrono::system_clock::now() + options.connect_timeout;
  for (const auto& channel : transport.channels) {
    channel->GetState(/*try_to_connect=*/true);
  }
  for (const auto& channel : transport.channels) {
    if (!channel->WaitForConnected(connected_by)) {
      return absl::UnavailableError(absl::StrCat(
          "cannot reach ", options.target, ": no connection within ",
          options.connect_timeout.count(),
          " ms (pass --connect-timeout-ms to wait longer)",
          TlsConnectionDetail(options.channel, channel)));
    }
  }
  return std::make_shared<Client>(
      ControlOptions(options, ControlDeadline(options)), transport.channels[0]);
}

// An HttpClient for the control calls, once the server answers HTTP.
absl::StatusOr<std::shared_ptr<const InferenceClient>> ConnectHttp(
    const LoadOptions& options) {
  auto client = std::make_shared<HttpClient>(
      ControlOptions(options, ControlDeadline(options)));
  if (absl::Status connected =
          client->WaitForConnection(options.connect_timeout);
      !connected.ok()) {
    return connected;
  }
  return client;
}

}  // namespace

absl::Status ValidateLoadOptions(const LoadOptions& options) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError("no target");
  }
  if (options.rates.empty() && options.concurrency.empty()) {
    return absl::InvalidArgumentError("no concurrency and no rate to run");
  }
  std::vector<absl::Status> checks = {
      Range("duration", options.duration_s, 1e-3, 7 * 86400.0),
      Range("requests", static_cast<double>(options.requests), 0, 1e9),
      Range("warmup", options.warmup_s, 0, 86400.0),
      Range("batch", static_cast<double>(options.batch), 1, 1 << 24),
      Range("channels", options.channels, 1, 1024),
      Range("max in flight", options.max_in_flight, 1, 100000),
      Range("timeout (ms)", static_cast<double>(options.timeout.count()), 1,
            86400e3),
      Range("connect timeout (ms)",
            static_cast<double>(options.connect_timeout.count()), 1, 86400e3),
      Range("backoff initial (ms)",
            static_cast<double>(options.backoff.initial.count()), 1, 60e3),
      Range("backoff multiplier", options.backoff.multiplier, 1, 10),
      Range("backoff max (ms)",
            static_cast<double>(options.backoff.max.count()),
            static_cast<double>(options.backoff.initial.count()), 600e3),
      Range("backoff jitter", options.backoff.jitter, 0, 1),
      Range("server gone after", options.server_gone_after_s, 1e-3, 3600),
      Range("global timeout", options.global_timeout_s, 0, 30 * 86400.0),
      Range("progress interval", options.progress_interval_s, 0.01, 3600),
  };
  for (int concurrency : options.concurrency) {
    checks.push_back(Range("concurrency", concurrency, 1, 10000));
  }
  for (double rate : options.rates) {
    checks.push_back(Range("rate", rate, 1e-3, 1e6));
  }
  checks.push_back(ValidateChannelOptions(options.channel));
  for (const absl::Status& status : checks) {
    if (!status.ok()) return status;
  }
  if (options.protocol == Protocol::kGrpc) {
    if (options.http_tensors != HttpTensors::kBinary) {
      return absl::InvalidArgumentError(
          "--http-json goes with --protocol http");
    }
    return ValidateTlsTarget(options.channel, options.target);
  }
  if (options.stream) {
    return absl::InvalidArgumentError(
        "--stream is gRPC-only (ModelStreamInfer): drop it, or use "
        "--protocol grpc");
  }
  if (options.channels != 1) {
    return absl::InvalidArgumentError(
        "--channels is gRPC-only: over HTTP every request in flight has a "
        "keep-alive connection of its own");
  }
  if (options.http_tensors == HttpTensors::kJson &&
      options.dtype == WireType::kBf16) {
    return absl::InvalidArgumentError(
        "--dtype bf16 travels only as binary data: drop --http-json");
  }
  return ParseHttpTarget(options.target, options.channel.security.tls).status();
}

LoadGenerator::LoadGenerator(LoadOptions options)
    : options_(std::move(options)) {}

absl::StatusOr<std::vector<StepResult>> LoadGenerator::Run(
    const ProgressCallback& progress) {
  absl::Status valid = ValidateLoadOptions(options_);
  if (!valid.ok()) return valid;
  const bool open_loop = !options_.rates.empty();
  std::vector<double> levels;
  if (open_loop) {
    levels = options_.rates;
  } else {
    levels.assign(options_.concurrency.begin(), options_.concurrency.end());
  }
  const int steps = static_cast<int>(levels.size());
  const double timeout_s = options_.timeout.count() / 1e3;
  double global_s = options_.global_timeout_s;
  if (global_s <= 0) {
    global_s = options_.requests > 0
                   ? 3600.0
                   : steps * (options_.warmup_s + options_.duration_s +
                              2 * timeout_s + 10.0);
  }
  const Clock::time_point deadline = Clock::now() + FromSeconds(global_s);

  auto transport = std::make_shared<load_internal::Transport>();
  transport->timeout = options_.timeout;
  const bool http = options_.protocol == Protocol::kHttp;
  absl::StatusOr<std::shared_ptr<const InferenceClient>> client =
      http ? ConnectHttp(options_) : ConnectGrpc(options_, *transport);
  if (!client.ok()) return client.status();
  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      (*client)->ModelMetadata();
  if (!metadata.ok()) {
    return absl::Status(
        metadata.status().code(),
        absl::StrCat("ModelMetadata: ", metadata.status().message()));
  }
  LoadRequestSpec spec;
  spec.model_name = options_.model_name;
  spec.model_version = options_.model_version;
  spec.batch = options_.batch;
  spec.grad = options_.grad;
  spec.dtype = options_.dtype;
  spec.seed = options_.seed;
  const absl::StatusOr<inference::ModelConfigResponse> config =
      (*client)->ModelConfig();
  absl::StatusOr<ModelTensors> model =
      DescribeModel(*metadata, config.ok() ? &config->config() : nullptr);
  if (!model.ok()) return model.status();
  spec.model = *std::move(model);
  absl::StatusOr<inference::ModelInferRequest> request = MakeLoadRequest(spec);
  if (!request.ok()) return request.status();
  transport->expected_outputs = ExpectedOutputs(spec);
  ClientOptions statistics = ControlOptions(
      options_,
      std::max<std::chrono::milliseconds>(options_.timeout, kStatsDeadline));
  if (http) {
    absl::StatusOr<HttpInferRequest> encoded =
        EncodeHttpInferRequest(*request, options_.http_tensors);
    if (!encoded.ok()) return encoded.status();
    load_internal::HttpCallSpec calls;
    calls.target = options_.target;
    calls.request = *std::move(encoded);
    calls.expected_outputs = transport->expected_outputs;
    calls.timeout = options_.timeout;
    calls.max_attempts = options_.channel.max_attempts;
    calls.security = options_.channel.security;
    calls.max_threads = options_.max_in_flight;
    for (int concurrency : options_.concurrency) {
      calls.max_threads = std::max(calls.max_threads, concurrency);
    }
    transport->http =
        std::make_shared<load_internal::HttpCalls>(std::move(calls));
    transport->statistics = std::make_shared<HttpClient>(statistics);
  } else {
    transport->body = grpc::Slice(request->SerializeAsString());
    transport->statistics =
        std::make_shared<Client>(statistics, transport->channels[0]);
  }

  load_internal::Driver driver(options_, transport, deadline, progress, steps);
  std::vector<StepResult> results;
  for (int index = 0; index < steps; ++index) {
    absl::StatusOr<StepResult> result =
        driver.RunStep(index, open_loop, levels[index]);
    if (!result.ok()) return result.status();
    results.push_back(*std::move(result));
    if (progress) {
      LoadProgress event;
      event.kind = LoadProgress::Kind::kStepDone;
      event.step = index;
      event.steps = steps;
      event.open_loop = open_loop;
      event.level = levels[index];
      event.result = &results.back();
      progress(event);
    }
    // Cut short, or no server left: the remaining steps are skipped.
    if (results.back().timed_out || results.back().server_gone) break;
  }
  return results;
}

}  // namespace reluserve
