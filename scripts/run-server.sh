#!/usr/bin/env bash
# Builds ReluServe (installing its dependencies) and runs the server in the
# foreground on 127.0.0.1 with the default model: HTTP/REST on 8000, gRPC on
# 8001, metrics on 8002. Extra arguments go to reluserve-server, e.g.
# scripts/run-server.sh --weights model.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release --target reluserve-server reluserve-client reluserve-load
exec build/release/server/reluserve-server "$@"
