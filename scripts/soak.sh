#!/usr/bin/env bash
# The soak (not run by CI): builds the release preset's server and the Python
# stubs, then runs scripts/soak.py against a fresh reluserve-server on
# 127.0.0.1 for SECONDS (default 600) at concurrency 16: mixed forward,
# forward+backward, BF16 and malformed requests over gRPC and HTTP/REST, the
# server's RSS sampled each second. Exit 0 only with no unexpected outcome and
# RSS growth <= 5 % after the 60 s warm-up (scripts/soak.py --help).
# Usage: scripts/soak.sh [SECONDS] [soak.py flags, e.g. --out DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=600
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
scripts/build.sh release --target reluserve-server reluserve_interop_python_stubs
exec /usr/bin/python3 -B scripts/soak.py --server build/release/server/reluserve-server \
  --stubs build/release/tests/interop/python_stubs --seconds "$seconds" "$@"
