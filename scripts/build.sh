#!/usr/bin/env bash
# Configures and builds one CMake preset (default: release) after installing
# the dependencies. Usage: scripts/build.sh [preset] [cmake --build args...]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
shift || true
scripts/install-deps.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" "$@"
