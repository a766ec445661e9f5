#!/usr/bin/env bash
# The compute core must not depend on gRPC or protobuf (docs/architecture.md,
# "Who may include whom").
set -euo pipefail
cd "$(dirname "$0")/.."
if grep -rnE '#include *[<"](grpc|grpcpp|google/protobuf)|\.pb\.h[">]' server/core; then
  echo "check-core-isolation: server/core includes gRPC/protobuf headers (above)" >&2
  exit 1
fi
echo "check-core-isolation: server/core is free of gRPC and protobuf"
