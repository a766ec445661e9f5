#!/usr/bin/env bash
# Installs the dependencies, builds everything and runs the whole test suite
# with ctest: first the release build, then the same tests built with
# AddressSanitizer + UndefinedBehaviorSanitizer (RELUSERVE_SKIP_ASAN=1 skips
# that second pass). Extra arguments go to ctest, e.g. scripts/test.sh -R interop
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/check-core-isolation.sh

presets=(release)
[ "${RELUSERVE_SKIP_ASAN:-0}" = 1 ] || presets+=(asan)
for preset in "${presets[@]}"; do
  echo "=== $preset: build"
  scripts/build.sh "$preset"
  echo "=== $preset: test"
  ctest --preset "$preset" --timeout 300 -j "$(nproc)" "$@"
done
