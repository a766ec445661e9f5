// reluserve-client: health, metadata and inference calls against a ReluServe
// (or any Open Inference Protocol) server from the command line.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/client.h"
#include "client/npy.h"
#include "client/stats.h"
#include "client/tensor.h"

namespace reluserve {
namespace {

// Exit codes.
constexpr int kOk = 0;
constexpr int kFailed = 1;       // an RPC or a file failed; health: not ready
constexpr int kUnreachable = 2;  // health only: ServerLive failed

struct CommonFlags {
  ClientOptions options;
  int64_t timeout_ms = 30000;
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
  command.add_option("--target", flags.options.target, "Server, HOST:PORT")
      ->capture_default_str();
  command.add_option("--model", flags.options.model_name, "Model name")
      ->capture_default_str();
  command.add_option("--model-version", flags.options.model_version,
                     "Model version (default: the server's choice)");
  command.add_option("--timeout-ms", flags.timeout_ms, "Deadline of each RPC")
      ->check(CLI::Range(int64_t{1}, int64_t{24} * 3600 * 1000))
      ->capture_default_str();
}

int Fail(const absl::Status& status, absl::string_view context = "") {
  std::cerr << "error: " << context << absl::StatusCodeToString(status.code())
            << ": " << status.message() << "\n";
  return kFailed;
}

int RunHealth(const Client& client) {
  absl::StatusOr<HealthStatus> health = client.Health();
  if (!health.ok()) {
    std::cerr << "unreachable: " << client.options().target << ": "
              << absl::StatusCodeToString(health.status().code()) << ": "
              << health.status().message() << "\n";
    return kUnreachable;
  }
  auto yes_no = [](bool value) { return value ? "true" : "false"; };
  absl::PrintF("live         %s\n", yes_no(health->live));
  absl::PrintF("ready        %s\n", yes_no(health->ready));
  absl::PrintF("model ready  %s (%s%s%s)\n", yes_no(health->model_ready),
               client.options().model_name,
               client.options().model_version.empty() ? "" : " version ",
               client.options().model_version);
  if (!health->detail.empty()) std::cerr << health->detail << "\n";
  return health->live && health->ready && health->model_ready ? kOk : kFailed;
}

void PrintTensorMetadata(
    absl::string_view title,
    const google::protobuf::RepeatedPtrField<
        inference::ModelMetadataResponse::TensorMetadata>& tensors) {
  absl::PrintF("%s\n", title);
  size_t width = 0;
  for (const auto& tensor : tensors)
    width = std::max(width, tensor.name().size());
  for (const auto& tensor : tensors) {
    absl::PrintF("  %-*s  %-4s  %s\n", static_cast<int>(width), tensor.name(),
                 tensor.datatype(),
                 ShapeToString({tensor.shape().begin(), tensor.shape().end()}));
  }
}

int RunMetadata(const Client& client) {
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

// The metadata shape of tensor `name`, looked up among `tensors`.
template <typename Tensors>
absl::StatusOr<std::vector<int64_t>> MetadataShape(const Tensors& tensors,
                                                   absl::string_view name) {
  for (const auto& tensor : tensors) {
    if (tensor.name() == name) {
      return std::vector<int64_t>(tensor.shape().begin(), tensor.shape().end());
    }
  }
  return absl::NotFoundError(
      absl::StrFormat("model metadata lists no tensor %s", name));
}

// The product of the dimensions after the batch dimension: K for `x`, M for
// `y`.
absl::StatusOr<int64_t> FeatureSize(const std::vector<int64_t>& shape,
                                    absl::string_view name) {
  if (shape.size() < 2 || std::any_of(shape.begin() + 1, shape.end(),
                                      [](int64_t dim) { return dim < 0; })) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "model metadata gives %s the shape %s: cannot tell its size per batch "
        "row; pass the tensor as a .npy file",
        name, ShapeToString(shape)));
  }
  return NumElements({shape.begin() + 1, shape.end()});
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
  if (summary.nan_count > 0)
    absl::StrAppend(&line, "  nan ", summary.nan_count);
  if (summary.inf_count > 0)
    absl::StrAppend(&line, "  inf ", summary.inf_count);
  absl::StrAppend(&line, "  [", absl::StrJoin(first, ", "), "]");
  if (!note.empty()) absl::StrAppend(&line, "  ", note);
  absl::PrintF("%s\n", line);
}

double ToMs(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

int RunInfer(const Client& client, const InferFlags& flags) {
  const bool grad = flags.grad || !flags.grad_y_path.empty();
  // Also opens the connection, so the timed calls below do not include it.
  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      client.ModelMetadata();
  if (!metadata.ok()) return Fail(metadata.status(), "ModelMetadata: ");

  InferInputs inputs;
  inputs.id = flags.id;
  inputs.output_names = flags.outputs;
  std::string x_note, grad_y_note;
  if (!flags.x_path.empty()) {
    absl::StatusOr<Tensor> x = ReadNpy(flags.x_path);
    if (!x.ok()) return Fail(x.status());
    inputs.x = *std::move(x);
    x_note = "from " + flags.x_path;
  } else {
    absl::StatusOr<std::vector<int64_t>> shape =
        MetadataShape(metadata->inputs(), "x");
    if (!shape.ok()) return Fail(shape.status());
    absl::StatusOr<int64_t> k = FeatureSize(*shape, "x");
    if (!k.ok()) return Fail(k.status());
    absl::StatusOr<Tensor> x =
        RandomNormalTensor({flags.batch, *k}, flags.seed);
    if (!x.ok()) return Fail(x.status());
    inputs.x = *std::move(x);
    x_note = absl::StrFormat("random N(0, 1), seed %d", flags.seed);
  }
  if (!flags.grad_y_path.empty()) {
    absl::StatusOr<Tensor> grad_y = ReadNpy(flags.grad_y_path);
    if (!grad_y.ok()) return Fail(grad_y.status());
    inputs.grad_y = *std::move(grad_y);
    grad_y_note = "from " + flags.grad_y_path;
  } else if (grad) {
    absl::StatusOr<std::vector<int64_t>> shape =
        MetadataShape(metadata->inputs(), "grad_y");
    if (!shape.ok()) shape = MetadataShape(metadata->outputs(), "y");
    if (!shape.ok()) return Fail(shape.status());
    absl::StatusOr<int64_t> m = FeatureSize(*shape, "grad_y");
    if (!m.ok()) return Fail(m.status());
    if (inputs.x.shape.empty()) {
      return Fail(absl::InvalidArgumentError(
          "x has rank 0: no batch dimension to size a random grad_y by"));
    }
    absl::StatusOr<Tensor> grad_y =
        RandomNormalTensor({inputs.x.shape[0], *m}, flags.seed + 1);
    if (!grad_y.ok()) return Fail(grad_y.status());
    inputs.grad_y = *std::move(grad_y);
    grad_y_note = absl::StrFormat("random N(0, 1), seed %d", flags.seed + 1);
  }

  if (!flags.out_dir.empty()) {
    std::error_code error;
    std::filesystem::create_directories(flags.out_dir, error);
    if (error) {
      return Fail(absl::InvalidArgumentError(
          absl::StrFormat("%s: %s", flags.out_dir, error.message())));
    }
    absl::Status status = WriteToDir(flags.out_dir, "x", inputs.x);
    if (status.ok() && inputs.grad_y.has_value()) {
      status = WriteToDir(flags.out_dir, "grad_y", *inputs.grad_y);
    }
    if (!status.ok()) return Fail(status);
  }

  absl::StatusOr<inference::ModelInferRequest> request =
      client.MakeRequest(inputs);
  if (!request.ok()) return Fail(request.status());
  std::optional<InferResult> result;
  std::vector<double> round_trips_ms;
  round_trips_ms.reserve(flags.repeat);
  for (int call = 1; call <= flags.repeat; ++call) {
    absl::StatusOr<InferResult> reply = client.Infer(*request);
    if (!reply.ok()) {
      return Fail(reply.status(),
                  flags.repeat == 1
                      ? ""
                      : absl::StrFormat("call %d of %d: ", call, flags.repeat));
    }
    round_trips_ms.push_back(ToMs(reply->round_trip));
    result = *std::move(reply);
  }

  absl::PrintF("model %s version %s", result->model_name,
               result->model_version.empty() ? "-" : result->model_version);
  if (!result->id.empty()) absl::PrintF(", id \"%s\"", result->id);
  absl::PrintF("\n");
  size_t width = 6;  // "grad_y"
  for (const NamedTensor& output : result->outputs) {
    width = std::max(width, output.name.size());
  }
  PrintTensor("x", width, inputs.x, x_note);
  if (inputs.grad_y.has_value()) {
    PrintTensor("grad_y", width, *inputs.grad_y, grad_y_note);
  }
  absl::PrintF("->\n");
  for (const NamedTensor& output : result->outputs) {
    PrintTensor(output.name, width, output.tensor);
  }

  if (flags.repeat == 1) {
    absl::PrintF("round trip  %.3f ms\n", round_trips_ms[0]);
  } else {
    const LatencySummary latency = SummarizeLatencies(round_trips_ms);
    absl::PrintF(
        "round trip over %d calls (ms)  median %.3f  p90 %.3f  min %.3f  "
        "max %.3f\n",
        latency.count, latency.median, latency.p90, latency.min, latency.max);
  }

  if (!flags.out_dir.empty()) {
    for (const NamedTensor& output : result->outputs) {
      absl::Status status =
          WriteToDir(flags.out_dir, output.name, output.tensor);
      if (!status.ok()) return Fail(status);
    }
    std::vector<std::string> written = {"x"};
    if (inputs.grad_y.has_value()) written.push_back("grad_y");
    for (const NamedTensor& output : result->outputs) {
      written.push_back(output.name);
    }
    absl::PrintF("wrote %s/{%s}.npy\n", flags.out_dir,
                 absl::StrJoin(written, ","));
  }
  return kOk;
}

int Main(int argc, char** argv) {
  CLI::App app(
      "Calls a ReluServe (Open Inference Protocol / KServe v2) server over "
      "gRPC.",
      "reluserve-client");
  app.require_subcommand(1);

  CommonFlags common;
  InferFlags infer_flags;

  CLI::App* health = app.add_subcommand(
      "health",
      "ServerLive, ServerReady and ModelReady. Exit status: 0 when all are "
      "true, 1 when any is false, 2 when the server cannot be reached.");
  AddCommonFlags(*health, common);

  CLI::App* metadata = app.add_subcommand(
      "metadata", "Server name, version and extensions; the model's tensors.");
  AddCommonFlags(*metadata, common);

  CLI::App* infer = app.add_subcommand(
      "infer",
      "Sends one ModelInfer request (or the same one --repeat times) and "
      "summarises the outputs. Random tensors are i.i.d. standard normal "
      "N(0, 1) from std::mt19937_64 via Box-Muller: x from --seed, grad_y "
      "from --seed + 1; the same seed gives the same tensors on every "
      "machine. K (x) and M (grad_y) come from the model's metadata.");
  AddCommonFlags(*infer, common);
  CLI::Option* batch =
      infer->add_option("--batch", infer_flags.batch, "Rows N of a random x")
          ->check(CLI::Range(int64_t{1}, int64_t{1} << 40))
          ->capture_default_str();
  infer->add_option("--seed", infer_flags.seed, "Seed of the random tensors")
      ->capture_default_str();
  infer->add_option("--x", infer_flags.x_path, "Read x from this .npy file")
      ->excludes(batch);
  infer->add_flag("--grad", infer_flags.grad,
                  "Ask for the backward pass, with a random grad_y [N, M]");
  infer->add_option("--grad-y", infer_flags.grad_y_path,
                    "Read grad_y from this .npy file (implies --grad)");
  infer
      ->add_option("--output", infer_flags.outputs,
                   "Ask for this output; repeat for several (default: y, and "
                   "the gradients with --grad)")
      ->allow_extra_args(false);
  infer->add_option("--out", infer_flags.out_dir,
                    "Write x.npy, grad_y.npy and each output as <name>.npy to "
                    "this directory");
  infer
      ->add_option("--repeat", infer_flags.repeat,
                   "Send the request this many times and report the round "
                   "trip's median, p90, min and max")
      ->check(CLI::Range(1, 100000000))
      ->capture_default_str();
  infer->add_option("--id", infer_flags.id, "Request id, echoed by the server");

  CLI11_PARSE(app, argc, argv);

  common.options.deadline = std::chrono::milliseconds(common.timeout_ms);
  const Client client(common.options);
  if (health->parsed()) return RunHealth(client);
  if (metadata->parsed()) return RunMetadata(client);
  return RunInfer(client, infer_flags);
}

}  // namespace
}  // namespace reluserve

int main(int argc, char** argv) { return reluserve::Main(argc, argv); }
