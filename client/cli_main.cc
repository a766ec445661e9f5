// reluserve-client: health, metadata and inference calls against a ReluServe
// (or any Open Inference Protocol) server from the command line.

#include <malloc.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/channel_flags.h"
#include "client/inference_client.h"
#include "client/npy.h"
#include "client/protocol_flags.h"
#include "client/security_flags.h"
#include "client/stats.h"
#include "client/tensor.h"
#include "common/command_line.h"

namespace reluserve {
namespace {

// Exit statuses (common/command_line.h): kExitOk; kExitFailed when a call
// or a file failed, or (health) the server is not ready; kExitUsage; and
// kExitUnreachable when no connection could be made.
constexpr int kOk = kExitOk;
constexpr int kFailed = kExitFailed;

constexpr char kExitStatusFooter[] =
    "Exit status: 0 success (health: live, ready and the model ready); 1 a "
    "call or a file failed (health: not ready); 2 a wrong command line; 4 the "
    "server could not be reached within --connect-timeout-ms.";

struct CommonFlags {
  ProtocolFlags protocol;
  SecurityFiles security;
  ClientOptions options;
  int64_t timeout_ms = 30000;
  int64_t connect_timeout_ms = 1000;
};

struct InferFlags {
  int64_t batch = 1;
  uint64_t seed = 0;
  std::string x_path;
  bool grad = false;
  std::string grad_y_path;
  std::vector<std::string> outputs;
  std::string out_dir;
  int repeat = 1;
  std::string id;
};

void AddCommonFlags(CLI::App& command, CommonFlags& flags) {
  AddProtocolFlags(command, flags.protocol);
  command.add_option("--model", flags.options.model_name, "Model name")
      ->capture_default_str();
  command.add_option("--model-version", flags.options.model_version,
                     "Model version (default: the server's choice)");
  command.add_option("--timeout-ms", flags.timeout_ms, "Deadline of each call")
      ->type_name("MS")
      ->check(CLI::Range(int64_t{1}, int64_t{24} * 3600 * 1000))
      ->capture_default_str();
  command
      .add_option("--connect-timeout-ms", flags.connect_timeout_ms,
                  "How long to wait for the connection before giving up (0: "
                  "no wait; the first call fails instead)")
      ->type_name("MS")
      ->check(CLI::Range(int64_t{0}, int64_t{24} * 3600 * 1000))
      ->capture_default_str();
  AddChannelFlags(command, flags.options.channel);
  AddSecurityFlags(command, flags.security);
  command.footer(kExitStatusFooter);
}

int Fail(const absl::Status& status, absl::string_view context = "") {
  std::cerr << "error: " << context << absl::StatusCodeToString(status.code())
            << ": " << status.message() << "\n";
  return kFailed;
}

int RunHealth(const InferenceClient& client) {
  absl::StatusOr<HealthStatus> health = client.Health();
  if (!health.ok()) {
    std::cerr << "unreachable: " << client.options().target << ": "
              << absl::StatusCodeToString(health.status().code()) << ": "
              << health.status().message() << "\n";
    return kExitUnreachable;
  }
  auto yes_no = [](bool value) { return value ? "true" : "false"; };
  absl::PrintF("live         %s\n", yes_no(health->live));
  absl::PrintF("ready        %s\n", yes_no(health->ready));
  if (client.options().model_name.empty()) {
    absl::PrintF("model ready  - (no --model: not checked)\n");
  } else {
    absl::PrintF("model ready  %s (%s%s%s)\n", yes_no(health->model_ready),
                 client.options().model_name,
                 client.options().model_version.empty() ? "" : " version ",
                 client.options().model_version);
  }
  if (!health->detail.empty()) std::cerr << health->detail << "\n";
  return health->live && health->ready && health->model_ready ? kOk : kFailed;
}

void PrintTensorMetadata(
    absl::string_view title,
    const google::protobuf::RepeatedPtrField<
        inference::ModelMetadataResponse::TensorMetadata>& tensors) {
  absl::PrintF("%s\n", title);
  size_t width = 0;
  for (const auto& tensor : tensors) {
    width = std::max(width, tensor.name().size());
  }
  for (const auto& tensor : tensors) {
    absl::PrintF("  %-*s  %-4s  %s\n", static_cast<int>(width), tensor.name(),
                 tensor.datatype(),
                 ShapeToString({tensor.shape().begin(), tensor.shape().end()}));
  }
}

int RunMetadata(const InferenceClient& client) {
  absl::StatusOr<inference::ServerMetadataResponse> server =
      client.ServerMetadata();
  if (!server.ok()) return Fail(server.status(), "ServerMetadata: ");
  absl::StatusOr<inference::ModelMetadataResponse> model =
      client.ModelMetadata();
  if (!model.ok()) return Fail(model.status(), "ModelMetadata: ");

  const auto or_none = [](const auto& list) {
    return list.empty() ? std::string("(none)") : absl::StrJoin(list, ", ");
  };
  absl::PrintF("server      %s %s\n", server->name(), server->version());
  absl::PrintF("extensions  %s\n", or_none(server->extensions()));
  absl::PrintF("model       %s\n", model->name());
  absl::PrintF("versions    %s\n", or_none(model->versions()));
  absl::PrintF("platform    %s\n", model->platform());
  PrintTensorMetadata("inputs", model->inputs());
  PrintTensorMetadata("outputs", model->outputs());
  return kOk;
}

// Output names come from the server; keep them from escaping --out.
bool IsSafeFileName(const std::string& name) {
  return !name.empty() && name[0] != '.' &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                  c == '-' || c == '.';
         });
}

absl::Status WriteToDir(const std::string& dir, const std::string& name,
                        const Tensor& tensor) {
  if (!IsSafeFileName(name)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "not writing tensor \"%s\": unsafe as a file name", name));
  }
  return WriteNpy((std::filesystem::path(dir) / (name + ".npy")).string(),
                  tensor);
}

void PrintTensor(absl::string_view name, size_t width, const Tensor& tensor,
                 absl::string_view note = "") {
  constexpr size_t kFirst = 5;
  const TensorSummary summary = Summarize(tensor.data);
  std::vector<std::string> first;
  for (size_t i = 0; i < std::min(kFirst, tensor.data.size()); ++i) {
    first.push_back(absl::StrFormat("%.6g", tensor.data[i]));
  }
  if (tensor.data.size() > kFirst) first.push_back("...");
  std::string line = absl::StrFormat(
      "%-*s  %-12s  min %-10.6g  max %-10.6g  mean %-10.6g  zeros %5.1f%%",
      static_cast<int>(width), name, ShapeToString(tensor.shape), summary.min,
      summary.max, summary.mean, 100.0 * summary.zero_fraction());
  if (summary.nan_count > 0) {
    absl::StrAppend(&line, "  nan ", summary.nan_count);
  }
  if (summary.inf_count > 0) {
    absl::StrAppend(&line, "  inf ", summary.inf_count);
  }
  absl::StrAppend(&line, "  [", absl::StrJoin(first, ", "), "]");
  if (!note.empty()) absl::StrAppend(&line, "  ", note);
  absl::PrintF("%s\n", line);
}

// The request's tensors, and where each came from (for printing).
struct PreparedInputs {
  InferInputs inputs;
  std::vector<std::string> sources;  // per tensor
};

// The model's inputs from files or random, shaped by its metadata: --x
// fills its first required input, --grad-y (or a random tensor with --grad)
// its first optional one, and --grad makes random tensors for any other
// optional input. Random ones take seeds --seed, --seed + 1, ... in input
// order.
absl::StatusOr<PreparedInputs> PrepareInputs(const ModelTensors& model,
                                             const InferFlags& flags) {
  PreparedInputs prepared;
  InferInputs& inputs = prepared.inputs;
  inputs.id = flags.id;
  inputs.output_names = flags.outputs;
  int64_t rows = flags.batch;
  bool first_required = true, first_optional = true;
  for (size_t i = 0; i < model.inputs.size(); ++i) {
    const ModelInput& input = model.inputs[i];
    if (input.optional && !flags.grad) continue;
    const std::string& path =
        input.optional ? (first_optional ? flags.grad_y_path : std::string())
                       : (first_required ? flags.x_path : std::string());
    (input.optional ? first_optional : first_required) = false;
    absl::StatusOr<Tensor> tensor;
    std::string source;
    if (!path.empty()) {
      tensor = ReadNpy(path);
      source = "from " + path;
    } else {
      std::vector<int64_t> shape = {rows};
      shape.insert(shape.end(), input.row_shape.begin(), input.row_shape.end());
      const uint64_t seed = flags.seed + i;
      tensor = RandomNormalTensor(shape, seed);
      source = absl::StrFormat("random N(0, 1), seed %d", seed);
    }
    if (!tensor.ok()) return tensor.status();
    if (inputs.tensors.empty()) {
      if (tensor->shape.empty()) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s has rank 0: no batch dimension", input.name));
      }
      rows = tensor->shape[0];  // later random inputs follow its batch
    }
    inputs.tensors.push_back({input.name, *std::move(tensor)});
    prepared.sources.push_back(std::move(source));
  }
  return prepared;
}

void PrintResult(const PreparedInputs& prepared, const InferResult& result) {
  absl::PrintF("model %s version %s", result.model_name,
               result.model_version.empty() ? "-" : result.model_version);
  if (!result.id.empty()) absl::PrintF(", id \"%s\"", result.id);
  absl::PrintF("\n");
  size_t width = 6;
  for (const NamedTensor& tensor : prepared.inputs.tensors) {
    width = std::max(width, tensor.name.size());
  }
  for (const NamedTensor& output : result.outputs) {
    width = std::max(width, output.name.size());
  }
  for (size_t i = 0; i < prepared.inputs.tensors.size(); ++i) {
    const NamedTensor& input = prepared.inputs.tensors[i];
    PrintTensor(input.name, width, input.tensor, prepared.sources[i]);
  }
  absl::PrintF("->\n");
  for (const NamedTensor& output : result.outputs) {
    PrintTensor(output.name, width, output.tensor);
  }
}

void PrintRoundTrips(const std::vector<double>& round_trips_ms) {
  if (round_trips_ms.size() == 1) {
    absl::PrintF("round trip  %.3f ms\n", round_trips_ms[0]);
    return;
  }
  const LatencySummary latency = SummarizeLatencies(round_trips_ms);
  absl::PrintF(
      "round trip over %d calls (ms)  median %.3f  p90 %.3f  min %.3f  "
      "max %.3f\n",
      latency.count, latency.median, latency.p90, latency.min, latency.max);
}

int RunInfer(const InferenceClient& client, InferFlags flags) {
  flags.grad = flags.grad || !flags.grad_y_path.empty();
  // Also opens the connection, so the timed calls below do not include it.
  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      client.ModelMetadata();
  if (!metadata.ok()) return Fail(metadata.status(), "ModelMetadata: ");
  // Servers that state their batch limit and optional inputs (Triton's
  // ModelConfig) let a batch that is too large be refused here with a
  // clear message, rather than by gRPC's message size limit.
  const absl::StatusOr<inference::ModelConfigResponse> config =
      client.ModelConfig();
  absl::StatusOr<ModelTensors> model =
      DescribeModel(*metadata, config.ok() ? &config->config() : nullptr);
  if (!model.ok()) return Fail(model.status());
  absl::StatusOr<PreparedInputs> prepared = PrepareInputs(*model, flags);
  if (!prepared.ok()) return Fail(prepared.status());
  const InferInputs& inputs = prepared->inputs;

  std::vector<std::string> written;  // names, for the final message
  auto write = [&flags, &written](const std::string& name,
                                  const Tensor& tensor) {
    written.push_back(name);
    return WriteToDir(flags.out_dir, name, tensor);
  };
  if (!flags.out_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(flags.out_dir, error);
    if (error) {
      return Fail(absl::InvalidArgumentError(
          absl::StrFormat("%s: %s", flags.out_dir, error.message())));
    }
    // Inputs first, so a failing request can be reproduced from them.
    for (const NamedTensor& input : inputs.tensors) {
      if (absl::Status status = write(input.name, input.tensor); !status.ok()) {
        return Fail(status);
      }
    }
  }
  if (config.ok()) {
    if (absl::Status fits = CheckBatchSize(inputs, config->config());
        !fits.ok()) {
      return Fail(fits);
    }
  }
  absl::StatusOr<std::unique_ptr<PreparedInfer>> request =
      client.Prepare(inputs);
  if (!request.ok()) return Fail(request.status());
  std::optional<InferResult> result;
  std::vector<double> round_trips_ms;
  for (int call = 1; call <= flags.repeat; ++call) {
    absl::StatusOr<InferResult> reply = (*request)->Send();
    if (!reply.ok()) {
      return Fail(reply.status(),
                  flags.repeat == 1
                      ? ""
                      : absl::StrFormat("call %d of %d: ", call, flags.repeat));
    }
    round_trips_ms.push_back(
        std::chrono::duration<double, std::milli>(reply->round_trip).count());
    result = *std::move(reply);
  }
  PrintResult(*prepared, *result);
  PrintRoundTrips(round_trips_ms);

  if (!flags.out_dir.empty()) {
    for (const NamedTensor& output : result->outputs) {
      absl::Status status = write(output.name, output.tensor);
      if (!status.ok()) return Fail(status);
    }
    absl::PrintF("wrote %s/{%s}.npy\n", flags.out_dir,
                 absl::StrJoin(written, ","));
  }
  return kOk;
}

int Main(int argc, char** argv) {
  // Keep the megabyte response buffers in the heap between --repeat calls;
  // glibc would hand them back to the kernel and fault them in again each
  // time, which the round-trip times would then include.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  CLI::App app(
      "Calls a ReluServe (Open Inference Protocol / KServe v2) server over "
      "gRPC or HTTP.",
      "reluserve-client");
  app.require_subcommand(1);
  AddVersionFlag(app, "reluserve-client");
  app.footer(kExitStatusFooter);

  // One set per subcommand: CLI11 fills a flag's environment value into
  // every subcommand that declares it, so shared storage would let an
  // unused subcommand's RELUSERVE_TARGET override the --target given.
  CommonFlags health_flags, metadata_flags, infer_common;
  InferFlags infer_flags;

  CLI::App* health = app.add_subcommand(
      "health",
      "ServerLive, ServerReady and ModelReady. Exit status: 0 when all are "
      "true, 1 when any is false, 4 when the server cannot be reached.");
  AddCommonFlags(*health, health_flags);

  CLI::App* metadata = app.add_subcommand(
      "metadata", "Server name, version and extensions; the model's tensors.");
  AddCommonFlags(*metadata, metadata_flags);

  CLI::App* infer = app.add_subcommand(
      "infer",
      "Sends one inference request (or the same one --repeat times) and "
      "summarises the outputs. The model's inputs and their shapes come from "
      "its metadata (optional ones, such as grad_y, from its ModelConfig). "
      "Random tensors are i.i.d. standard normal N(0, 1) from "
      "std::mt19937_64 via Box-Muller, the i-th input's from --seed + i "
      "(x from --seed, grad_y from --seed + 1); the same seed gives the "
      "same tensors on every machine.");
  AddCommonFlags(*infer, infer_common);
  CLI::Option* batch = infer
                           ->add_option("--batch", infer_flags.batch,
                                        "Rows N of the random inputs")
                           ->check(CLI::Range(int64_t{1}, int64_t{1000000}))
                           ->capture_default_str();
  infer->add_option("--seed", infer_flags.seed, "Seed of the random tensors")
      ->capture_default_str();
  infer
      ->add_option("--x", infer_flags.x_path,
                   "Read the model's (first required) input, x, from this "
                   ".npy file")
      ->type_name("FILE")
      ->excludes(batch);
  infer->add_flag("--grad", infer_flags.grad,
                  "Ask for the backward pass: send the model's optional "
                  "inputs (grad_y), random unless --grad-y gives one");
  infer
      ->add_option("--grad-y", infer_flags.grad_y_path,
                   "Read the model's (first optional) input, grad_y, from "
                   "this .npy file (implies --grad)")
      ->type_name("FILE");
  infer
      ->add_option("--output", infer_flags.outputs,
                   "Ask for this output; repeat for several (default: y, and "
                   "the gradients with --grad)")
      ->type_name("NAME")
      ->allow_extra_args(false);
  infer
      ->add_option("--out", infer_flags.out_dir,
                   "Write x.npy, grad_y.npy and each output as <name>.npy to "
                   "this directory (created if missing)")
      ->type_name("DIR");
  infer
      ->add_option("--repeat", infer_flags.repeat,
                   "Send the request this many times and report the round "
                   "trip's median, p90, min and max")
      ->check(CLI::Range(1, 100000000))
      ->capture_default_str();
  infer->add_option("--id", infer_flags.id, "Request id, echoed by the server");

  if (std::optional<int> exit_status = ParseCommandLine(app, argc, argv)) {
    return *exit_status;
  }

  CommonFlags& common = health->parsed()     ? health_flags
                        : metadata->parsed() ? metadata_flags
                                             : infer_common;
  if (const std::string problem =
          common.protocol.Problem(common.security.tls());
      !problem.empty()) {
    std::cerr << "reluserve-client: " << problem
              << "\nRun 'reluserve-client --help' for usage.\n";
    return kExitUsage;
  }
  if (std::optional<int> exit_status =
          LoadSecurityFlags(common.security, "reluserve-client",
                            common.options.channel.security)) {
    return *exit_status;
  }
  common.options.target = common.protocol.Target();
  if (absl::Status valid =
          common.protocol.protocol == Protocol::kGrpc
              ? ValidateTlsTarget(common.options.channel, common.options.target)
              : absl::OkStatus();
      !valid.ok()) {
    std::cerr << "reluserve-client: " << valid.message()
              << "\nRun 'reluserve-client --help' for usage.\n";
    return kExitUsage;
  }
  common.options.http_tensors = common.protocol.http_tensors();
  common.options.deadline = std::chrono::milliseconds(common.timeout_ms);
  const std::unique_ptr<InferenceClient> client =
      CreateInferenceClient(common.protocol.protocol, common.options);
  if (absl::Status connected =
          common.connect_timeout_ms == 0
              ? absl::OkStatus()
              : client->WaitForConnection(
                    std::chrono::milliseconds(common.connect_timeout_ms));
      !connected.ok()) {
    std::cerr << "unreachable: " << connected.message() << "\n";
    return kExitUnreachable;
  }
  if (health->parsed()) return RunHealth(*client);
  if (metadata->parsed()) return RunMetadata(*client);
  return RunInfer(*client, infer_flags);
}

}  // namespace
}  // namespace reluserve

int main(int argc, char** argv) { return reluserve::Main(argc, argv); }
