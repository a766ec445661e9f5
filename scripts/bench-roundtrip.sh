#!/usr/bin/env bash
# Round-trip latency of reluserve-client against a local reluserve-server:
# N=1 and N=100, forward and forward+backward, median of --repeat calls (one
# in flight). Prints a Markdown table for docs/benchmarks.md.
# Usage: scripts/bench-roundtrip.sh [repeat (default 300)]
set -euo pipefail
cd "$(dirname "$0")/.."
repeat="${1:-300}"
scripts/build.sh release --target reluserve-server reluserve-client >/dev/null
server=build/release/server/reluserve-server
client=build/release/client/reluserve-client

log=$(mktemp)
"$server" --host 127.0.0.1 --port 0 >"$log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$log" >&2; echo "server did not start" >&2; exit 1; }

echo "| call | N | median ms | p90 ms | min ms | max ms |"
echo "|---|---|---|---|---|---|"
for batch in 1 100; do
  for grad in "" "--grad"; do
    line=$("$client" infer --target "127.0.0.1:$port" --batch "$batch" $grad \
      --repeat "$repeat" | grep '^round trip')
    # round trip over R calls (ms)  median A  p90 B  min C  max D
    read -r median p90 min max < <(echo "$line" |
      sed -E 's/.*median ([0-9.]+) +p90 ([0-9.]+) +min ([0-9.]+) +max ([0-9.]+).*/\1 \2 \3 \4/')
    kind=$([ -n "$grad" ] && echo "forward+backward" || echo "forward")
    echo "| $kind | $batch | $median | $p90 | $min | $max |"
  done
done
