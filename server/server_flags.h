#ifndef RELUSERVE_SERVER_SERVER_FLAGS_H_
#define RELUSERVE_SERVER_SERVER_FLAGS_H_

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "server/service/server.h"

namespace reluserve {

// reluserve-server's command line, as parsed (README "Server flags").
struct ServerFlags {
  std::string host = "127.0.0.1";
  int port = 8001;
  std::string model_repository;
  std::string weights_file;
  std::string weights_prefix;
  std::string layers;
  int64_t in_features = 3072;
  int64_t out_features = 100;
  uint64_t seed = 42;
  int64_t max_batch = 4096;
  int intra_op_threads = 1;
  int compute_threads = 0;
  int64_t max_batch_delay_us = 0;
  int64_t preferred_batch_size = 0;
  int64_t max_queue_size = 256;
  double drain_seconds = 10.0;
  double heap_trim_seconds = 10.0;
  int64_t max_connection_idle_ms = 300000;
  int64_t max_connection_age_ms = 0;
  int64_t max_connection_age_grace_ms = 0;
  int64_t keepalive_time_ms = 0;
  int64_t keepalive_timeout_ms = 20000;
  int max_stream_pending = 16;
  int max_concurrent_streams = 100;
  int64_t max_pending_bytes = 0;
  std::string model_name = "linear_relu";
  std::string log_level = "info";
  std::string log_format = "text";
  std::string metrics_host;
  int metrics_port = 8002;
  int http_port = 8000;
  int http_threads = 32;
  int64_t dead_relu_window = 10000;
  double dead_relu_warn = 0.5;
  std::string access_log;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  std::string auth_token_file;
};

// Defines every flag on `app`, writing into `flags`, each also read from
// RELUSERVE_<FLAG>; the usage text and footer included.
void DefineServerFlags(CLI::App& app, ServerFlags& flags);

// The server's options for these flags (options.model and .scheduling:
// the single model's without a repository, every model's defaults with
// one).
Server::Options ServerOptions(const ServerFlags& flags);

}  // namespace reluserve

#endif  // RELUSERVE_SERVER_SERVER_FLAGS_H_
