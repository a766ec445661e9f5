#!/usr/bin/env bash
# The library boundaries that includes could cross (docs/architecture.md,
# "Who may include or link whom"): the compute core depends on no gRPC or
# protobuf, and neither the client nor common/ reaches into server/.
set -euo pipefail
cd "$(dirname "$0")/.."
if grep -rnE '#include *[<"](grpc|grpcpp|google/protobuf)|\.pb\.h[">]' server/core server/runtime; then
  echo "check-core-isolation: server/core or server/runtime includes gRPC/protobuf headers (above)" >&2
  exit 1
fi
if grep -rnE '#include *"server/(service|http)/' server/core server/runtime; then
  echo "check-core-isolation: server/core or server/runtime includes a front end (above)" >&2
  exit 1
fi
if grep -rnE '#include *"server/' client common; then
  echo "check-core-isolation: client/ or common/ includes from server/ (above);" \
    "what both sides need belongs in common/" >&2
  exit 1
fi
echo "check-core-isolation: server/core and server/runtime are free of gRPC and protobuf;" \
  "client/ and common/ include nothing from server/"
