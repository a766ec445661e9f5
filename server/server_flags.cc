#include "server/server_flags.h"

#include <cstdlib>
#include <string>

#include "common/command_line.h"

namespace reluserve {

void DefineServerFlags(CLI::App& app, ServerFlags& flags) {
  app.add_option("--host", flags.host, "Address to listen on")
      ->capture_default_str();
  app.add_option("--port", flags.port, "Port to listen on (0 picks one)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  CLI::Option* repository =
      app.add_option("--model-repository", flags.model_repository,
                     "Serve every model of this folder (Triton's layout: "
                     "<model>/[config.pbtxt], <model>/<version>/"
                     "model.safetensors)")
          ->check(CLI::ExistingDirectory);
  CLI::Option* weights_file =
      app.add_option("--weights", flags.weights_file,
                     "safetensors state dict of an nn.Linear (weight, bias) "
                     "or an nn.Sequential of Linear layers (0.weight, "
                     "0.bias, 2.weight, ...)")
          ->check(CLI::ExistingFile)
          ->excludes(repository);
  app.add_option("--weights-prefix", flags.weights_prefix,
                 "Name prefix of the model inside the file, e.g. 'net.'")
      ->excludes(repository);
  app.add_option("--layers", flags.layers,
                 "The Sequential's module list, e.g. "
                 "'linear,relu,linear' (default: a ReLU after every Linear)")
      ->excludes(repository);
  app.add_option("--in-features", flags.in_features,
                 "in_features of the default layer (no weights file)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24))
      ->excludes(weights_file)
      ->excludes(repository);
  app.add_option("--out-features", flags.out_features,
                 "out_features of the default layer (no weights file)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24))
      ->excludes(weights_file)
      ->excludes(repository);
  app.add_option("--seed", flags.seed,
                 "Seed of the default He-normal weights (no weights file)")
      ->capture_default_str();
  app.add_option("--max-batch", flags.max_batch,
                 "Largest batch N accepted; sets the gRPC message limits")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  app.add_option("--intra-op-threads,--threads", flags.intra_op_threads,
                 "oneDNN (OpenMP) threads inside one computation")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--compute-threads", flags.compute_threads,
                 "Threads that run computations, behind a bounded queue; 0 "
                 "computes inline on gRPC's threads (no queue, no batching)")
      ->capture_default_str()
      ->check(CLI::Range(0, 256));
  app.add_option("--max-queue-size", flags.max_queue_size,
                 "Requests waiting for a compute thread before new ones get "
                 "UNAVAILABLE")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app.add_option("--max-batch-delay-us", flags.max_batch_delay_us,
                 "Dynamic batching: how long a forward request may wait for "
                 "others to share its oneDNN call (0: off; needs "
                 "--compute-threads >= 1)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{10'000'000}));
  app.add_option("--preferred-batch-size", flags.preferred_batch_size,
                 "Dynamic batching: stop gathering at this many rows (0: "
                 "--max-batch)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  app.add_option("--max-connection-idle-ms", flags.max_connection_idle_ms,
                 "Close a connection that has had no call for this long "
                 "(clients reconnect when they need to); 0 keeps idle "
                 "connections open")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 31));
  app.add_option("--max-connection-age-ms", flags.max_connection_age_ms,
                 "Send GOAWAY to a connection this old, so that clients "
                 "reconnect and reach new replicas behind an L4 balancer; 0: "
                 "never")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 31));
  app.add_option("--max-connection-age-grace-ms",
                 flags.max_connection_age_grace_ms,
                 "After that GOAWAY, how long calls still open may run before "
                 "the connection is closed; 0: until they finish")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 31));
  app.add_option("--keepalive-time-ms", flags.keepalive_time_ms,
                 "Ping each client connection after this long without "
                 "traffic, to find dead peers (and keep NATs open); 0: gRPC's "
                 "default (2 hours)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 31));
  app.add_option("--keepalive-timeout-ms", flags.keepalive_timeout_ms,
                 "Close a connection whose keepalive ping is not answered "
                 "within this long")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 31));
  app.add_option("--max-stream-pending", flags.max_stream_pending,
                 "ModelStreamInfer messages one stream may have unanswered; "
                 "above it the server stops reading that stream")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-concurrent-streams", flags.max_concurrent_streams,
                 "gRPC calls (streams included) one connection may have open "
                 "at once; clients queue further calls until one ends")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 30));
  app.add_option("--max-pending-bytes", flags.max_pending_bytes,
                 "Bytes accepted requests may hold at once (messages, "
                 "replies); beyond it new requests get UNAVAILABLE. 0: "
                 "max(1 GiB, 4 x the message limits)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50));
  app.add_option("--drain-seconds", flags.drain_seconds,
                 "On SIGTERM, how long calls in flight may take to finish")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--heap-trim-seconds", flags.heap_trim_seconds,
                 "Return the heap's free pages to the kernel this often, so "
                 "RSS follows what is in use (malloc_trim); 0: never")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            const double seconds = std::strtod(text.c_str(), nullptr);
            return seconds == 0 || (seconds >= 0.1 && seconds <= 86400)
                       ? ""
                       : "must be 0 (never) or 0.1 to 86400 seconds";
          },
          "0 or 0.1-86400"));
  app.add_option("--model-name", flags.model_name,
                 "Name the model is served under (requests, metadata); "
                 "without --model-repository")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& name) -> std::string {
            const bool ok =
                !name.empty() && name.find_first_not_of(
                                     "abcdefghijklmnopqrstuvwxyz"
                                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789_.-") == std::string::npos;
            return ok ? "" : "letters, digits, '_', '.' and '-' only";
          },
          "NAME"))
      ->excludes(repository);
  app.add_option("--log-level", flags.log_level,
                 "Least severe log level shown; debug includes gRPC's own")
      ->capture_default_str()
      ->check(CLI::IsMember(
          {"trace", "debug", "info", "warn", "error", "critical", "off"}));
  app.add_option("--log-format", flags.log_format,
                 "text, or json: one JSON object per line for log collectors")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--metrics-port", flags.metrics_port,
                 "Port of GET /metrics (Prometheus text format); 0 turns the "
                 "endpoint off")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--http-port", flags.http_port,
                 "Port of the REST front end (KServe v2 / Triton HTTP, with "
                 "the binary tensor extension) on --host; 0 turns it off")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--http-threads", flags.http_threads,
                 "Threads of the REST front end; each open (keep-alive) "
                 "connection holds one, so this bounds the HTTP connections "
                 "served at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_option("--metrics-host", flags.metrics_host,
                 "Address of the metrics endpoint (default: --host), e.g. "
                 "127.0.0.1 to keep it off the network");
  app.add_option("--dead-relu-window", flags.dead_relu_window,
                 "Rows the dead-ReLU monitor looks back over: a unit is dead "
                 "when its output was 0 for every one of them; 0 turns the "
                 "monitor off")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option("--dead-relu-warn", flags.dead_relu_warn,
                 "Log a warning when a ReLU layer's dead fraction first "
                 "exceeds this (0 to 1)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--access-log", flags.access_log,
                 "Append one line per inference request (method, model, "
                 "rows, code, microseconds, peer) to this file; '-' writes "
                 "to standard output");
  CLI::Option* tls_cert =
      app.add_option("--tls-cert", flags.tls_cert,
                     "PEM certificate (chain) of the server: TLS on every "
                     "listener (gRPC, REST, metrics)")
          ->check(CLI::ExistingFile);
  CLI::Option* tls_key =
      app.add_option("--tls-key", flags.tls_key,
                     "PEM private key of --tls-cert (unencrypted)")
          ->check(CLI::ExistingFile);
  tls_cert->needs(tls_key);
  tls_key->needs(tls_cert);
  app.add_option("--tls-client-ca", flags.tls_client_ca,
                 "PEM CA certificate(s): mutual TLS, a client without a "
                 "certificate signed by one of them is refused")
      ->check(CLI::ExistingFile)
      ->needs(tls_cert);
  app.add_option("--auth-token-file", flags.auth_token_file,
                 "Tokens, one per line ('#' comments): every call needs "
                 "'authorization: Bearer <token>' (health, ServerLive, "
                 "ServerReady, /v2/health/* and /metrics exempt); re-read "
                 "on SIGHUP")
      ->check(CLI::ExistingFile);
  AddVersionFlag(app, "reluserve-server");
  // Every flag also as RELUSERVE_<FLAG> (containers, systemd units).
  AddEnvironmentNames(app, "RELUSERVE_");
  app.footer(
      "Every flag can also be given as the environment variable "
      "RELUSERVE_<FLAG> (upper case, '-' as '_', e.g. RELUSERVE_MAX_BATCH); "
      "the command line wins.\n"
      "Exit status: 0 after a clean stop (SIGINT/SIGTERM and drain), 1 when "
      "start-up fails (weights, model, address), 2 for a wrong command "
      "line, 128 + the signal when a signal ends start-up, or a second "
      "signal ends the drain.");
}

Server::Options ServerOptions(const ServerFlags& flags) {
  Server::Options options;
  options.host = flags.host;
  options.port = flags.port;
  options.model.name = flags.model_name;
  options.metrics_host = flags.metrics_host;
  options.metrics_port = flags.metrics_port == 0 ? -1 : flags.metrics_port;
  options.http_port = flags.http_port == 0 ? -1 : flags.http_port;
  options.http_threads = flags.http_threads;
  options.dead_relu.window_rows = flags.dead_relu_window;
  options.dead_relu.warn_fraction = flags.dead_relu_warn;
  options.access_log = flags.access_log;
  options.tls.cert_file = flags.tls_cert;
  options.tls.key_file = flags.tls_key;
  options.tls.client_ca_file = flags.tls_client_ca;
  options.access_log_json = flags.log_format == "json";
  options.limits.max_stream_pending = flags.max_stream_pending;
  options.limits.max_pending_bytes = flags.max_pending_bytes;
  options.max_concurrent_streams = flags.max_concurrent_streams;
  options.max_connection_idle =
      std::chrono::milliseconds(flags.max_connection_idle_ms);
  options.max_connection_age =
      std::chrono::milliseconds(flags.max_connection_age_ms);
  options.max_connection_age_grace =
      std::chrono::milliseconds(flags.max_connection_age_grace_ms);
  options.keepalive_time = std::chrono::milliseconds(flags.keepalive_time_ms);
  options.keepalive_timeout =
      std::chrono::milliseconds(flags.keepalive_timeout_ms);
  options.model.max_batch = flags.max_batch;
  options.scheduling.compute_threads = flags.compute_threads;
  options.scheduling.max_queue_size = static_cast<size_t>(flags.max_queue_size);
  options.scheduling.max_batch_delay =
      std::chrono::microseconds(flags.max_batch_delay_us);
  options.scheduling.preferred_batch_rows = flags.preferred_batch_size;
  options.scheduling.max_batch_rows = flags.max_batch;
  return options;
}

}  // namespace reluserve
