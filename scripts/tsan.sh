#!/usr/bin/env bash
# Builds reluserve_tsan_tests in the tsan preset (ThreadSanitizer): only that
# binary and the gRPC-free libraries it links (core, runtime, the test
# reference), checks that it links no gRPC or protobuf, and runs its cases
# with ctest under TSAN_OPTIONS=halt_on_error=1 (the tsan test preset): any
# report fails the case.
#
#   scripts/tsan.sh              every case
#   scripts/tsan.sh -R Scheduler other ctest arguments, added
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh tsan --target reluserve_tsan_tests
binary=build/tsan/tests/tsan/reluserve_tsan_tests
if ldd "$binary" | grep -Ei 'grpc|protobuf'; then
  echo "tsan: $binary links gRPC or protobuf; it must not" >&2
  exit 1
fi
ctest --preset tsan -R '^tsan\.' --timeout 300 -j "$(nproc)" "$@"
