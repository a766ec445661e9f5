// reluserve-server: flags → models (a repository, a weights file or the
// default layer) → Server, until SIGINT or SIGTERM, then a graceful drain.
#include <string.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/allocator_tuning.h"
#include "common/command_line.h"
#include "dnnl.hpp"
#include "server/core/linear_layer.h"
#include "server/model_loading.h"
#include "server/server_flags.h"
#include "server/service/bearer_tokens.h"
#include "server/service/grpc_logging.h"
#include "server/service/log_format.h"
#include "server/service/process_limits.h"
#include "server/service/server.h"
#include "server/service/stop_signals.h"
#include "spdlog/spdlog.h"

int main(int argc, char** argv) {
  CLI::App app{
      "ReluServe: Linear+ReLU models (one layer or an nn.Sequential stack, on "
      "oneDNN) served over the Open Inference Protocol (KServe v2 gRPC)",
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
  std::optional<reluserve::PeriodicHeapTrim> heap_trim;
  if (flags.heap_trim_seconds > 0) {
    heap_trim.emplace(std::chrono::milliseconds(
        static_cast<int64_t>(flags.heap_trim_seconds * 1000)));
  }
  const reluserve::OpenFileLimit files = reluserve::RaiseOpenFileLimit();
  if (files.after != files.before) {
    spdlog::info("open-file limit raised from {} to {}", files.before,
                 files.after);
  }

  reluserve::Server::Options options = reluserve::ServerOptions(flags);
  std::shared_ptr<reluserve::BearerTokens> tokens;
  if (!flags.auth_token_file.empty()) {
    absl::StatusOr<std::shared_ptr<reluserve::BearerTokens>> loaded =
        reluserve::BearerTokens::Load(flags.auth_token_file);
    if (!loaded.ok()) {
      spdlog::critical("{}", std::string(loaded.status().message()));
      return reluserve::kExitFailed;
    }
    tokens = *std::move(loaded);
    options.tokens = tokens;
    stop_signals.SetReloadHandler([tokens] {
      if (absl::Status reloaded = tokens->Reload(); !reloaded.ok()) {
        spdlog::error("SIGHUP: {}; the previous tokens stay in force",
                      std::string(reloaded.message()));
      } else {
        spdlog::info("SIGHUP: {} token(s) read from {}", tokens->size(),
                     tokens->path());
      }
    });
    spdlog::info("token auth on: {} token(s) from {}", tokens->size(),
                 tokens->path());
  }
  absl::StatusOr<std::vector<reluserve::LoadedModel>> models =
      reluserve::LoadModels(flags, options);
  if (!models.ok()) {
    spdlog::critical("cannot load the model: {}",
                     std::string(models.status().message()));
    return reluserve::kExitFailed;
  }
  std::vector<reluserve::ServedModelSpec> specs;
  for (reluserve::LoadedModel& model : *models) {
    specs.push_back(std::move(model.spec));
  }
  absl::StatusOr<std::unique_ptr<reluserve::Server>> server =
      reluserve::Server::Start(options, std::move(specs));
  if (!server.ok()) {
    spdlog::critical("{}", std::string(server.status().message()));
    return reluserve::kExitFailed;
  }
  // From here a signal drains: calls may already be arriving.
  stop_signals.MarkServing();
  for (const reluserve::LoadedModel& model : *models) {
    spdlog::info("{}", model.description);
  }
  const dnnl_version_t* onednn = dnnl_version();
  spdlog::info(
      "oneDNN {}.{}.{} on {}, {} thread(s) per computation; messages up to "
      "{:.1f} MiB in, {:.1f} MiB out",
      onednn->major, onednn->minor, onednn->patch,
      reluserve::LinearLayer::CpuIsaName(), flags.intra_op_threads,
      (*server)->max_receive_bytes() / 1048576.0,
      (*server)->max_send_bytes() / 1048576.0);
  const bool tls = options.tls.enabled();
  const char* const scheme = tls ? "https" : "http";
  if ((*server)->http_port() > 0) {
    spdlog::info("HTTP/REST listening on {}://{}", scheme,
                 reluserve::HostPort(flags.host, (*server)->http_port()));
  }
  spdlog::info("listening on {}{}", (*server)->address(),
               !tls                   ? ""
               : options.tls.mutual() ? " (TLS, client certificates required)"
                                      : " (TLS)");
  if ((*server)->metrics_port() > 0) {
    spdlog::info(
        "metrics on {}://{}/metrics", scheme,
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
