#!/usr/bin/env bash
# Builds the release preset (with the benchmarks) and runs every benchmark
# side by side, writing docs/benchmarks.md and its plots. Takes a few
# minutes; --quick makes every step short, for trying the script.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release
exec /usr/bin/python3 scripts/bench.py "$@"
