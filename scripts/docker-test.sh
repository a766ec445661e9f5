#!/usr/bin/env bash
# The container test: the only proof that docker/ works. On a Debian 12 host
# (root or sudo) whose only network is Debian's apt mirror, from scratch:
#
#   1. installs docker.io, docker-compose, debootstrap and python3-yaml if
#      missing, and starts dockerd if no daemon answers (by hand when there
#      is no systemd; stopped again at the end);
#   2. builds debian:bookworm-slim with debootstrap from the host's mirror
#      (no registry is reachable) unless the image exists: the cache between
#      runs on one machine;
#   3. builds the images (docker/Dockerfile, nginx, Prometheus) and checks
#      the manifests (docker/check-manifests.py, promtool check config);
#   4. brings docker/compose.yaml up: 3 replicas, nginx, Prometheus, and
#      checks the REST front end through nginx's HTTP port: GET
#      /v2/health/ready, and one JSON POST /v2/models/linear_relu/infer whose
#      y matches the same request's over gRPC;
#   5. sends traffic through nginx with reluserve-load (build/release, built
#      here if missing) and checks that every replica served some, from each
#      replica's GET /metrics (nv_inference_request_success);
#   6. checks that Prometheus scraped all three (/api/v1/targets, and the
#      counters through its query API);
#   7. stops one replica gracefully (SIGTERM, drain) while reluserve-load
#      runs and checks that the client saw no failed request, that the
#      replica's GET /v2/health/ready turned from 200 to 503 while it drained,
#      and that it exited 0;
#   8. stops and removes the stack (gracefully: moby#42545) and prints the
#      image size and a summary line.
#
# Ends with "docker-test: N passed, 0 failed"; exits non-zero with
# "docker-test: FAILED: ..." on the first failed check. The load generator is
# the host's build/release/client/reluserve-load (scripts/test.sh builds it;
# built here when missing).
# Environment: RELUSERVE_DOCKER_TEST_PROJECT (compose project name,
# default reluserve-docker-test).
set -euo pipefail
cd "$(dirname "$0")/.."

t_start=$(date +%s)
log() { echo "docker-test: $*"; }
fail() {
  echo "docker-test: FAILED: $*" >&2
  exit 1
}
elapsed() { echo "$(($(date +%s) - t_start)) s"; }
checks=0
passed() { checks=$((checks + 1)); }

# Docker, debootstrap and apt need root.
[ "$(id -u)" -eq 0 ] || exec sudo -E "$0" "$@"
export DOCKER_BUILDKIT=0 # the classic builder: what Debian's docker.io has
project=${RELUSERVE_DOCKER_TEST_PROJECT:-reluserve-docker-test}
compose_file=docker/compose.yaml
image=reluserve:latest
load=build/release/client/reluserve-load
client=build/release/client/reluserve-client
work=$(mktemp -d /tmp/reluserve-docker-test.XXXXXX)

# --- 1. packages and the daemon ----------------------------------------------
needed=()
command -v dockerd >/dev/null || needed+=(docker.io)
command -v docker-compose >/dev/null || needed+=(docker-compose)
command -v debootstrap >/dev/null || needed+=(debootstrap)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || needed+=(python3-yaml)
if [ ${#needed[@]} -gt 0 ]; then
  log "installing ${needed[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${needed[@]}" >/dev/null
fi

compose() {
  local limit=$1
  shift
  timeout "$limit" docker-compose -f "$compose_file" -p "$project" "$@"
}

dockerd_pid=
stack_up=0
cleanup() {
  local status=$?
  set +e
  if [ "$stack_up" = 1 ]; then
    log "tearing down"
    if ! compose 90 stop -t 15 >/dev/null 2>&1; then
      echo "docker-test: warning: docker-compose stop timed out" >&2
    fi
    if ! compose 90 down -v --remove-orphans >/dev/null 2>&1; then
      echo "docker-test: warning: docker-compose down timed out (moby#42545?)" >&2
      [ "$status" -ne 0 ] || status=1
    fi
  fi
  if [ -n "$dockerd_pid" ]; then
    log "stopping the dockerd this test started (pid $dockerd_pid)"
    kill -TERM "$dockerd_pid" 2>/dev/null
    for _ in $(seq 60); do
      kill -0 "$dockerd_pid" 2>/dev/null || break
      sleep 0.5
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

if ! timeout 20 docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    log "starting docker.service"
    systemctl start docker
  else
    log "starting dockerd (log: /var/log/reluserve-dockerd.log)"
    dockerd >>/var/log/reluserve-dockerd.log 2>&1 &
    dockerd_pid=$!
  fi
  for _ in $(seq 60); do
    timeout 10 docker info >/dev/null 2>&1 && break
    sleep 1
  done
  timeout 10 docker info >/dev/null 2>&1 ||
    fail "the Docker daemon did not come up (see /var/log/reluserve-dockerd.log)"
fi
log "docker $(docker version --format '{{.Server.Version}}'), $(docker-compose version --short) [$(elapsed)]"

# --- 2. the base image -------------------------------------------------------
# The host's Debian repositories: apt-get indextargets prints what apt uses,
# whatever the format of the sources files.
debian_repos() {
  # shellcheck disable=SC2016  # apt's own $(FIELD) syntax
  apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' |
    awk '$2 ~ /^bookworm(-updates|-security)?$/' | sort -u
}

if docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  log "base image debian:bookworm-slim: cached"
else
  mirror=$(debian_repos | awk '$2 == "bookworm" { print $1; exit }')
  mirror=${mirror:-http://deb.debian.org/debian/}
  rootfs=$(mktemp -d /var/tmp/reluserve-rootfs.XXXXXX)
  log "building debian:bookworm-slim: debootstrap --variant=minbase bookworm from $mirror"
  if ! nice -n 10 debootstrap --variant=minbase bookworm "$rootfs" "$mirror" \
    >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    rm -rf "$rootfs"
    fail "debootstrap failed"
  fi
  # What the official slim image has: the same repositories as the host
  # (with updates and security), no documentation, no apt caches.
  debian_repos | awk '{ key = $1 " " $2; if (!(key in c)) order[n++] = key; c[key] = c[key] " " $3 }
                      END { for (i = 0; i < n; i++) print "deb " order[i] c[order[i]] }' \
    >"$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-slim" <<'EOF'
Acquire::Languages "none";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
EOF
  (
    cd "$rootfs"
    find usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
    find usr/share/doc -mindepth 1 -type d -empty -delete
    rm -rf usr/share/man/* usr/share/info/* var/cache/apt/archives/*.deb \
      var/cache/apt/*.bin var/lib/apt/lists/* var/log/*.log
    find usr/share/locale -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  )
  tar -C "$rootfs" -c . |
    docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  rm -rf "$rootfs"
  log "base image built: $(docker image inspect debian:bookworm-slim --format '{{.Size}}' |
    awk '{ printf "%.1f MB", $1 / 1e6 }') [$(elapsed)]"
fi

# --- 3. images and manifests -------------------------------------------------
/usr/bin/python3 docker/check-manifests.py || fail "docker/check-manifests.py"
passed
# --network host: the build's apt reaches the mirror the way the host's does
# (a bridge network may have no route or a smaller MTU).
build() {
  local tag=$1 dockerfile=$2 context=$3
  shift 3
  local t0
  t0=$(date +%s)
  if ! timeout 1500 docker build --network host -t "$tag" -f "$dockerfile" "$@" "$context" \
    >"$work/build-${tag%%:*}.log" 2>&1; then
    tail -n 40 "$work/build-${tag%%:*}.log" >&2
    fail "docker build of $tag failed"
  fi
  log "built $tag in $(($(date +%s) - t0)) s"
}
# The build stage under a tag of its own, so it stays the cache of the next
# build. Older builds of these images (their label) are untagged now: gone.
build reluserve-build:latest docker/Dockerfile . --target build
build "$image" docker/Dockerfile .
build reluserve-nginx:latest docker/nginx.Dockerfile docker
build reluserve-prometheus:latest docker/prometheus.Dockerfile docker
docker image prune -f --filter label=org.reluserve.stage >/dev/null
# The configuration and the alert rules it loads.
docker run --rm --entrypoint promtool reluserve-prometheus:latest \
  check config /etc/prometheus/prometheus.yml >"$work/promtool.log" 2>&1 || {
  cat "$work/promtool.log" >&2
  fail "promtool check config docker/prometheus.yml"
}
passed
log "runtime packages: $(docker run --rm --entrypoint cat "$image" \
  /usr/share/reluserve/runtime-packages.txt | tr '\n' ' ')"
server_help=$(docker run --rm "$image" --help)
grep -q -- '--metrics-port' <<<"$server_help" ||
  fail "the image's reluserve-server has no --metrics-port: the per-replica counts need GET /metrics"
grep -q -- '--http-port' <<<"$server_help" ||
  fail "the image's reluserve-server has no --http-port: the REST checks and the probes need its HTTP front end"
passed

# The client that sends the load runs on the host: scripts/test.sh has built
# it (build/release); built here only when missing.
if [ ! -x "$load" ] || [ ! -x "$client" ]; then
  log "building $load and $client"
  scripts/build.sh release --target reluserve-load reluserve-client >/dev/null
fi
log "images ready [$(elapsed)]"

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# GET URL: its HTTP status (000: no answer), within 5 s.
http_status() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true; }
# `docker run -p 8001:8001 IMAGE` serves at once (on a free loopback port),
# its REST front end too (8000, on by default).
port=$(free_port)
http_port=$(free_port)
single=$(docker run -d --rm -p "127.0.0.1:$port:8001" -p "127.0.0.1:$http_port:8000" "$image")
if ! "$client" health --target "127.0.0.1:$port" --connect-timeout-ms 10000 >/dev/null; then
  docker logs "$single" >&2 || true
  docker stop -t 15 "$single" >/dev/null || true
  fail "docker run -p $port:8001 $image does not serve"
fi
single_ready=$(http_status "http://127.0.0.1:$http_port/v2/health/ready")
if [ "$single_ready" != 200 ]; then
  docker logs "$single" >&2 || true
  docker stop -t 15 "$single" >/dev/null || true
  fail "docker run -p $http_port:8000 $image: GET /v2/health/ready answered $single_ready, not 200"
fi
docker stop -t 15 "$single" >/dev/null || fail "docker stop of the single container"
passed
log "docker run -p 127.0.0.1:$port:8001 -p 127.0.0.1:$http_port:8000 $image: healthy and ready at once [$(elapsed)]"

# --- 4. the stack ------------------------------------------------------------
RELUSERVE_LB_PORT=$(free_port)
RELUSERVE_LB_HTTP_PORT=$(free_port)
RELUSERVE_PROMETHEUS_PORT=$(free_port)
export RELUSERVE_LB_PORT RELUSERVE_LB_HTTP_PORT RELUSERVE_PROMETHEUS_PORT
lb=127.0.0.1:$RELUSERVE_LB_PORT
lb_http=http://127.0.0.1:$RELUSERVE_LB_HTTP_PORT
prometheus=http://127.0.0.1:$RELUSERVE_PROMETHEUS_PORT
replicas=(reluserve-1 reluserve-2 reluserve-3)

# Left over from an interrupted run?
if [ -n "$(compose 60 ps -q 2>/dev/null)" ]; then
  compose 90 stop -t 15 >/dev/null 2>&1 || true
  compose 90 down -v --remove-orphans >/dev/null 2>&1 || true
fi
stack_up=1
compose 180 up -d --no-build >"$work/up.log" 2>&1 || {
  cat "$work/up.log" >&2
  fail "docker-compose up"
}

container() { compose 30 ps -q "$1"; }
# Docker's HEALTHCHECK (reluserve-client health) on every replica.
for replica in "${replicas[@]}"; do
  id=$(container "$replica")
  status=
  for _ in $(seq 90); do
    status=$(docker inspect --format '{{.State.Health.Status}}' "$id")
    [ "$status" = healthy ] && break
    [ "$(docker inspect --format '{{.State.Running}}' "$id")" = true ] ||
      fail "$replica exited: $(docker logs --tail 20 "$id" 2>&1)"
    sleep 1
  done
  [ "$status" = healthy ] || fail "$replica is $status after 90 s: $(docker logs --tail 20 "$id" 2>&1)"
done
passed
"$client" health --target "$lb" --connect-timeout-ms 5000 >/dev/null ||
  fail "reluserve-client health through nginx ($lb): $(compose 30 logs --tail 20 nginx 2>&1)"
passed
log "stack up: ${replicas[*]} healthy, nginx on $lb (gRPC) and $lb_http (HTTP), Prometheus on $prometheus [$(elapsed)]"

# --- the REST front end through nginx ----------------------------------------
lb_ready=$(http_status "$lb_http/v2/health/ready")
[ "$lb_ready" = 200 ] ||
  fail "GET $lb_http/v2/health/ready answered $lb_ready, not 200: $(compose 30 logs --tail 20 nginx 2>&1)"
passed
# One JSON inference, x of shape [1, 3072]: the x and y of the same request
# over gRPC (reluserve-client writes both as .npy) make the body and the
# expected answer.
"$client" infer --target "$lb" --batch 1 --seed 3 --out "$work/grpc" \
  --connect-timeout-ms 5000 --timeout-ms 5000 >"$work/grpc-infer.txt" 2>&1 || {
  cat "$work/grpc-infer.txt" >&2
  fail "reluserve-client infer through nginx ($lb)"
}
rest_json() {
  /usr/bin/python3 - "$@" <<'EOF'
import array, ast, json, math, sys
def npy(path):  # a C-order little-endian float32 .npy, without numpy
    blob = open(path, "rb").read()
    size = 2 if blob[6] == 1 else 4
    length = int.from_bytes(blob[8:8 + size], "little")
    header = ast.literal_eval(blob[8 + size:8 + size + length].decode("latin1"))
    assert header["descr"] == "<f4" and not header["fortran_order"], header
    values = array.array("f")
    values.frombytes(blob[8 + size + length:])
    return list(header["shape"]), values.tolist()
mode, folder, body = sys.argv[1:4]
if mode == "request":
    shape, x = npy(f"{folder}/x.npy")
    json.dump({"inputs": [{"name": "x", "shape": shape, "datatype": "FP32", "data": x}],
               "outputs": [{"name": "y"}]}, open(body, "w"))
    sys.exit(0)
shape, expected = npy(f"{folder}/y.npy")
outputs = {o.get("name"): o for o in json.load(open(body)).get("outputs", [])}
y = outputs.get("y", {})
if y.get("shape") != [1, 100] or y.get("datatype") != "FP32" or len(y.get("data", [])) != 100:
    sys.exit("no output y FP32 [1, 100] with 100 values: "
             + json.dumps({k: {f: v for f, v in o.items() if f != "data"} for k, o in outputs.items()}))
data = y["data"]
if shape != [1, 100] or not all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
                                for a, b in zip(data, expected)):
    sys.exit(f"y differs from gRPC's answer to the same x: {data[:3]} ... against {expected[:3]} ...")
print(f"y FP32 [1, 100] as over gRPC ({sum(v > 0 for v in data)} of 100 positive)")
EOF
}
rest_json request "$work/grpc" "$work/infer.json" || fail "the JSON body from $work/grpc/x.npy"
infer_status=$(curl -s -o "$work/infer-reply.json" -w '%{http_code}' --max-time 10 \
  -H 'Content-Type: application/json' --data-binary "@$work/infer.json" \
  "$lb_http/v2/models/linear_relu/infer" || true)
[ "$infer_status" = 200 ] ||
  fail "POST $lb_http/v2/models/linear_relu/infer answered $infer_status: $(head -c 500 "$work/infer-reply.json" 2>/dev/null)"
rest_result=$(rest_json check "$work/grpc" "$work/infer-reply.json") ||
  fail "POST $lb_http/v2/models/linear_relu/infer: $rest_result"
passed
log "REST through nginx ($lb_http): GET /v2/health/ready 200; POST /v2/models/linear_relu/infer 200, $rest_result [$(elapsed)]"

# --- 5. traffic through nginx, split over the replicas -----------------------
metrics_url() { echo "http://$(compose 30 port "$1" 8002)/metrics"; }
# The sum of nv_inference_request_success over the models a replica serves.
successes() {
  /usr/bin/python3 - "$(metrics_url "$1")" <<'EOF'
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
values = [float(m.group(1)) for m in re.finditer(
    r"^nv_inference_request_success\{[^}]*\} (\S+)$", text, re.M)]
if not values:
    sys.exit(f"no nv_inference_request_success in {sys.argv[1]}")
print(int(sum(values)))
EOF
}
# "requests errors" of reluserve-load's --json report (its one step).
load_counts() {
  /usr/bin/python3 -c 'import json, sys; s = json.load(open(sys.argv[1]))["steps"][0]
print(s["requests"], s["errors"], " ".join(f"{k}:{v}" for k, v in s["errors_by_code"].items()))' "$1"
}
run_load() {
  local json=$1
  shift
  "$load" --target "$lb" --concurrency 8 --channels 2 --batch 16 --warmup 0 \
    --timeout-ms 5000 --connect-timeout-ms 5000 --quiet --json "$json" "$@"
}

declare -A before
counters() {
  for replica in "${replicas[@]}"; do
    before[$replica]=$(successes "$replica") || fail "GET $(metrics_url "$replica") of $replica"
  done
}
served_since() {
  local now
  now=$(successes "$1") || fail "GET $(metrics_url "$1") of $1"
  echo $((now - ${before[$1]}))
}
counters
status=0
run_load "$work/split.json" --duration 4 --global-timeout 60 >"$work/split.txt" 2>&1 || status=$?
[ "$status" = 0 ] || {
  cat "$work/split.txt" >&2
  fail "reluserve-load through nginx exited $status"
}
read -r split_sent split_failed _ <<<"$(load_counts "$work/split.json")"
passed
split=()
served_total=0
for replica in "${replicas[@]}"; do
  served=$(served_since "$replica") || exit 1
  split+=("$replica $served")
  served_total=$((served_total + served))
  [ "$served" -gt 0 ] || fail "$replica served no request through nginx (metrics: ${split[*]})"
done
[ "$served_total" -ge "$split_sent" ] ||
  fail "the replicas count $served_total successes, the client $split_sent"
passed
log "load: $split_sent sent, $split_failed failed; replicas served ${split[*]} [$(elapsed)]"

# --- 6. Prometheus scraped every replica -------------------------------------
prometheus_check() {
  /usr/bin/python3 - "$prometheus" "${replicas[@]}" <<'EOF'
import json, sys, time, urllib.parse, urllib.request
base, replicas = sys.argv[1], sys.argv[2:]
def get(path, **query):
    url = f"{base}{path}?{urllib.parse.urlencode(query)}"
    return json.load(urllib.request.urlopen(url, timeout=5))["data"]
deadline = time.time() + 60
error = ""
while True:
    try:
        targets = {t["labels"]["instance"]: t for t in get("/api/v1/targets")["activeTargets"]
                   if t["labels"].get("job") == "reluserve"}
        up = sorted(i for i, t in targets.items() if t["health"] == "up")
        # Scraped after the load: every replica's counter is above zero.
        counts = {r["metric"]["instance"]: float(r["value"][1]) for r in get(
            "/api/v1/query", query="sum by (instance) (nv_inference_request_success)")["result"]}
        # docker/alert-rules.yml loaded and evaluated.
        rules = [r for g in get("/api/v1/rules")["groups"] for r in g["rules"]
                 if r["type"] == "alerting" and r.get("health") == "ok"]
        if (len(up) == len(replicas) and len(counts) == len(replicas)
                and all(v > 0 for v in counts.values()) and rules):
            print(f"{len(up)}/{len(targets)} targets up; nv_inference_request_success "
                  + ", ".join(f"{i}={int(v)}" for i, v in sorted(counts.items()))
                  + f"; {len(rules)} alerting rules evaluated")
            sys.exit(0)
    except OSError as e:
        targets, counts, rules = {}, {}, []
        error = str(e)
    if time.time() > deadline:
        sys.exit(f"targets {json.dumps({i: t['health'] for i, t in targets.items()})}, "
                 f"counters {counts}, {len(rules)} alerting rules evaluated {error}")
    time.sleep(1)
EOF
}
prom_result=$(prometheus_check) || fail "Prometheus did not scrape all three replicas: $prom_result"
passed
log "Prometheus: $prom_result [$(elapsed)]"

# --- 7. one replica stops gracefully mid-load --------------------------------
victim=reluserve-2
victim_id=$(container "$victim")
victim_http=http://$(compose 30 port "$victim" 8000)
# The victim's readiness and liveness, polled from before its SIGTERM (the
# file polling-ready says it has answered once) until `docker stop` has
# returned (30 s at most); prints the runs of ready/live statuses ("200/200
# x 12, 503/200 x 40, -/- x 3": - is no answer) and fails unless ready went
# from 200 to 503.
poll_health() {
  /usr/bin/python3 - "$victim_http" "$work/polling-ready" "$work/victim-stopped" <<'EOF'
import os, sys, time, urllib.error, urllib.request
def status(path):
    try:
        return urllib.request.urlopen(sys.argv[1] + path, timeout=2).status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:  # refused, reset, timed out: gone, or going
        return "-"
runs, deadline = [], time.time() + 30
while time.time() < deadline and not os.path.exists(sys.argv[3]):
    ready, live = status("/v2/health/ready"), status("/v2/health/live")
    if not runs:
        open(sys.argv[2], "w").close()
    if runs and runs[-1][0] == (ready, live):
        runs[-1][1] += 1
    else:
        runs.append([(ready, live), 1])
    time.sleep(0.02)
print(", ".join(f"{r}/{l} x {n}" for (r, l), n in runs) or "no answer")
seen = [r for (r, _), _ in runs if r != "-"]
sys.exit(0 if seen[:1] == [200] and 503 in seen else 1)
EOF
}
counters
status=0
run_load "$work/failover.json" --duration 10 --global-timeout 60 >"$work/failover.txt" 2>&1 &
load_pid=$!
sleep 3
poll_health >"$work/drain-health.txt" 2>&1 &
poll_pid=$!
for _ in $(seq 100); do
  [ -e "$work/polling-ready" ] && break
  sleep 0.05
done
t0=$(date +%s%N)
docker stop -t 15 "$victim_id" >/dev/null || fail "docker stop $victim"
stop_ms=$((($(date +%s%N) - t0) / 1000000))
touch "$work/victim-stopped"
poll_status=0
wait "$poll_pid" || poll_status=$?
drain_health=$(cat "$work/drain-health.txt")
wait "$load_pid" || status=$?
[ "$poll_status" = 0 ] ||
  fail "$victim's GET /v2/health/ready did not go from 200 to 503 while it drained (ready/live: $drain_health)"
passed
read -r fo_sent fo_failed fo_codes <<<"$(load_counts "$work/failover.json")"
if [ "$status" != 0 ] || [ "$fo_failed" != 0 ]; then
  cat "$work/failover.txt" >&2
  fail "with $victim stopped mid-load the client saw $fo_failed failed of $fo_sent (${fo_codes:-}; exit $status)"
fi
passed
exit_code=$(docker inspect --format '{{.State.ExitCode}}' "$victim_id")
[ "$exit_code" = 0 ] || fail "$victim exited $exit_code after SIGTERM (not a clean drain): $(docker logs --tail 20 "$victim_id" 2>&1)"
passed
after=()
for replica in "${replicas[@]}"; do
  [ "$replica" = "$victim" ] && continue
  served=$(served_since "$replica") || exit 1
  [ "$served" -gt 0 ] || fail "$replica served nothing while $victim was stopping"
  after+=("$replica $served")
done
passed
# The drain, from the replica's log: SIGTERM received ... stopped.
drain_ms=$(docker logs "$victim_id" 2>&1 | /usr/bin/python3 -c '
import datetime, re, sys
times = {}
for line in sys.stdin:
    m = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\]", line)
    for key in ("draining", "stopped"):
        if m and key in line and key not in times:
            times[key] = datetime.datetime.fromisoformat(m.group(1))
print(round((times["stopped"] - times["draining"]).total_seconds() * 1000)
      if len(times) == 2 else "?")')
# What nginx saw: UNAVAILABLE answers of the draining replica that went back
# to the client (grpc-status 14 as a header: the client's retry policy sent
# them again) and calls nginx itself moved to another replica (two upstream
# addresses on one line: refused connections).
compose 30 logs --no-color nginx >"$work/nginx.log" 2>&1 || true
passed_unavailable=$(grep -c 'grpc_status_header=14' "$work/nginx.log" || true)
moved=$(grep -c 'upstream=[^ ]*, ' "$work/nginx.log" || true)
log "drain: $victim's /v2/health/ready and /live, polled through its SIGTERM: $drain_health"
log "failover: $victim stopped (docker stop $stop_ms ms, drain $drain_ms ms, exit 0) during the load:" \
  "$fo_sent sent, $fo_failed failed; ${after[*]} served meanwhile; nginx passed" \
  "$passed_unavailable UNAVAILABLE back (retried by the client) and moved $moved call(s) itself [$(elapsed)]"

# --- 8. teardown, image size, summary ---------------------------------------
stack_up=0
compose 90 stop -t 15 >/dev/null 2>&1 || fail "docker-compose stop timed out"
compose 90 down -v --remove-orphans >/dev/null 2>&1 || fail "docker-compose down timed out (moby#42545?)"
passed
size=$(docker image inspect "$image" --format '{{.Size}}' | awk '{ printf "%.1f MB", $1 / 1e6 }')
log "image $image: $size"
log "summary: image $size; split: $split_sent sent, $split_failed failed, ${split[*]};" \
  "REST: ready 200, infer 200 as over gRPC, 503 while draining;" \
  "failover ($victim stopped mid-load): $fo_sent sent, $fo_failed failed," \
  "$passed_unavailable UNAVAILABLE retried; Prometheus: ${prom_result%%;*}; $(elapsed) in all"
echo "docker-test: $checks passed, 0 failed"
