// reluserve-server: flags → weights → LinearRelu → Server, until SIGINT or
// SIGTERM, then a graceful drain.
#include <string.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <new>
#include <optional>
#include <string>

#include "common/allocator_tuning.h"
#include "common/command_line.h"
#include "dnnl.hpp"
#include "server/core/linear_relu.h"
#include "server/core/weights.h"
#include "server/server_flags.h"
#include "server/service/grpc_logging.h"
#include "server/service/log_format.h"
#include "server/service/process_limits.h"
#include "server/service/server.h"
#include "server/service/stop_signals.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{
      "ReluServe: a Linear+ReLU layer (oneDNN) served over the Open Inference "
      "Protocol (KServe v2 gRPC)",
      "reluserve-server"};
  reluserve::ServerFlags flags;
  reluserve::DefineServerFlags(app, flags);
  if (std::optional<int> exit_status =
          reluserve::ParseCommandLine(app, argc, argv)) {
    return *exit_status;
  }
  if (flags.max_batch_delay_us > 0 && flags.compute_threads == 0) {
    std::fprintf(stderr,
                 "reluserve-server: --max-batch-delay-us needs "
                 "--compute-threads >= 1: batches are gathered in the compute "
                 "threads' queue\n");
    return reluserve::kExitUsage;
  }
  spdlog::set_level(spdlog::level::from_str(flags.log_level));
  if (flags.log_format == "json") reluserve::UseJsonLogFormat();
  reluserve::RouteGrpcLogsToSpdlog();
  spdlog::info("configuration: {}", reluserve::EffectiveConfiguration(app));

  // Before any thread starts, so that every thread inherits the mask.
  reluserve::StopSignalWatcher stop_signals;
  reluserve::KeepLargeBuffersAcrossCalls();
  const reluserve::OpenFileLimit files = reluserve::RaiseOpenFileLimit();
  if (files.after != files.before) {
    spdlog::info("open-file limit raised from {} to {}", files.before,
                 files.after);
  }

  absl::StatusOr<reluserve::LinearWeights> weights =
      absl::InternalError("not loaded");
  try {
    weights = flags.weights_file.empty()
                  ? reluserve::MakeDefaultWeights(
                        flags.in_features, flags.out_features, flags.seed)
                  : reluserve::LoadSafetensors(flags.weights_file,
                                               flags.weights_prefix);
  } catch (const std::bad_alloc&) {
    weights = absl::ResourceExhaustedError(
        "not enough memory for the weights of this layer size");
  }
  if (!weights.ok()) {
    spdlog::critical("cannot load weights: {}",
                     std::string(weights.status().message()));
    return reluserve::kExitFailed;
  }
  reluserve::LinearReluOptions layer_options;
  layer_options.intra_op_threads = flags.intra_op_threads;
  absl::StatusOr<std::unique_ptr<reluserve::LinearRelu>> layer =
      reluserve::LinearRelu::Create(*weights, layer_options);
  if (!layer.ok()) {
    spdlog::critical("cannot build the model: {}",
                     std::string(layer.status().message()));
    return reluserve::kExitFailed;
  }

  const reluserve::Server::Options options =
      reluserve::ServerOptions(flags, *weights);
  absl::StatusOr<std::unique_ptr<reluserve::Server>> server =
      reluserve::Server::Start(options, std::move(*layer));
  if (!server.ok()) {
    spdlog::critical("{}", std::string(server.status().message()));
    return reluserve::kExitFailed;
  }
  // From here a signal drains: calls may already be arriving.
  stop_signals.MarkServing();
  const dnnl_version_t* onednn = dnnl_version();
  spdlog::info(
      "model {} v{}: K={} M={} from {}; oneDNN {}.{}.{} on {}, {} thread(s) "
      "per computation; max batch {} (messages up to {} MiB in, {} MiB out)",
      options.model.name, options.model.version, weights->in_features,
      weights->out_features, weights->source, onednn->major, onednn->minor,
      onednn->patch, reluserve::LinearRelu::CpuIsaName(),
      flags.intra_op_threads, flags.max_batch,
      (*server)->max_receive_bytes() >> 20, (*server)->max_send_bytes() >> 20);
  if (flags.compute_threads == 0) {
    spdlog::info("computing inline on gRPC's threads");
  } else {
    spdlog::info(
        "{} compute thread(s), queue of {}; dynamic batching {}",
        flags.compute_threads, flags.max_queue_size,
        flags.max_batch_delay_us == 0
            ? std::string("off")
            : fmt::format("up to {} us, {} rows", flags.max_batch_delay_us,
                          flags.preferred_batch_size > 0
                              ? flags.preferred_batch_size
                              : flags.max_batch));
  }
  spdlog::info("listening on {}", (*server)->address());
  if ((*server)->metrics_port() > 0) {
    spdlog::info(
        "metrics on http://{}/metrics",
        reluserve::HostPort(
            flags.metrics_host.empty() ? flags.host : flags.metrics_host,
            (*server)->metrics_port()));
  }

  const int received = stop_signals.WaitForStop();
  spdlog::info("{} received: draining for up to {} s", strsignal(received),
               flags.drain_seconds);
  (*server)->Shutdown(
      std::chrono::system_clock::now() +
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::duration<double>(flags.drain_seconds)));
  spdlog::info("stopped");
  return reluserve::kExitOk;
}
