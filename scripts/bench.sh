#!/usr/bin/env bash
# Builds the release preset (with the benchmarks) and runs every benchmark
# side by side, writing docs/benchmarks.md and its plots. Takes a few
# minutes; --quick makes every step short, for trying the script.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh release
# The peer's BLAS (bench/peer/README.md), installed once; the system's
# libblas.so.3 and liblapack.so.3 stay what they were.
if [ ! -e /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 ]; then
  keep=()
  for name in libblas.so.3 liblapack.so.3; do
    value=$(update-alternatives --query "$name-x86_64-linux-gnu" 2>/dev/null |
      awk '/^Value:/ {print $2}')
    [ -n "$value" ] && keep+=("$name-x86_64-linux-gnu:$value")
  done
  apt-get install -y libopenblas0-openmp
  for entry in "${keep[@]}"; do
    update-alternatives --set "${entry%%:*}" "${entry#*:}"
  done
fi
exec /usr/bin/python3 scripts/bench.py "$@"
