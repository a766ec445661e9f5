#!/usr/bin/python3
"""Load balancing without containers: three real reluserve-server replicas on
127.0.0.1, and real traffic from reluserve-load spread over them

- through a real nginx (Debian's nginx) as the gRPC load balancer
  (`grpc_pass grpc://upstream; grpc_next_upstream error timeout;`), run as a
  child process with its own prefix, temp dirs, logs and pid file in a
  temporary directory;
- directly, with an `ipv4:` list of the three addresses as the target, which
  the client library balances round_robin.

Both ways, every replica must serve some requests (ModelStatistics on each),
and a replica stopped gracefully (SIGTERM: it drains) in the middle of the
load must cost the client no failed request: the client library's retry
policy sends a call refused with UNAVAILABLE again, to another replica. A
summary of each run (requests sent, failed, the split over the replicas, what
nginx saw) goes to stderr.

nginx is required: the test fails, never skips, without it
(scripts/install-deps.sh installs Debian's nginx).

    /usr/bin/python3 -B load_balancing_test.py --server PATH --load PATH
        --stubs DIR --nginx PATH [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402

_nginx_cli = argparse.ArgumentParser(add_help=False)
_nginx_cli.add_argument("--nginx", default=os.environ.get("RELUSERVE_NGINX"))
NGINX_ARGS, _rest = _nginx_cli.parse_known_args(sys.argv[1:])
ARGS, LOAD, UNITTEST_ARGV = sp.parse_load_cli([sys.argv[0], *_rest])
if ARGS.stubs:
    sys.path.insert(0, os.path.abspath(ARGS.stubs))

import grpc  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402

MODEL = "linear_relu"
REPLICAS = 3
# A small model: the test is about the traffic, not the arithmetic (and it
# runs under ASan too).
SERVER_ARGS = ["--in-features", "256", "--out-features", "16"]
# The load of one run: closed loop, 8 in flight over 2 connections.
LOAD_ARGS = ["--concurrency", "8", "--channels", "2", "--batch", "4",
             "--warmup", "0.3", "--timeout-ms", "5000", "--connect-timeout-ms", "5000"]
SPREAD_S = 2.0  # a run that only spreads
FAILOVER_S = 5.0  # a run during which a replica is stopped ...
STOP_AFTER_S = 2.0  # ... this long after reluserve-load started
LOAD_TIMEOUT_S = 30.0
NGINX_START_TIMEOUT_S = 10.0
RPC_TIMEOUT_S = 10.0

# One process (no worker left behind if the test is killed: the child dies
# with its parent), every path under the temporary directory. Through
# nginx a gRPC request can go to the next upstream only before it has been
# sent (grpc_pass never buffers the request body): a refused connection or a
# connect timeout. A draining replica's UNAVAILABLE is an ordinary gRPC
# answer (HTTP 200, grpc-status 14) and a stream cut by its GOAWAY a 502:
# both reach the client, whose retry policy sends the call again, and nginx
# picks the next upstream for it.
NGINX_CONF = """\
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{
    worker_connections 1024;
}}
http {{
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format grpc '$upstream_addr|$status|$upstream_status|'
                    '$upstream_http_grpc_status|$upstream_trailer_grpc_status';
    access_log {dir}/access.log grpc;

    upstream reluserve {{
{servers}
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{port} http2;
        client_max_body_size 0;
        keepalive_requests 1000000;
        location / {{
            grpc_pass grpc://reluserve;
            grpc_next_upstream error timeout;
            grpc_connect_timeout 1s;
        }}
    }}
}}
"""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((sp.LOOPBACK, 0))
        return s.getsockname()[1]


def accepts(port):
    try:
        with socket.create_connection((sp.LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


class Nginx:
    """nginx as a child process in the foreground, balancing `upstreams`
    (host:port) on 127.0.0.1:<free port>. Not thread-safe."""

    def __init__(self, binary, directory, upstreams):
        self.binary = binary
        self.dir = directory
        self.upstreams = list(upstreams)
        self.port = None
        self.proc = None
        self.conf = os.path.join(directory, "nginx.conf")
        self.error_log = os.path.join(directory, "error.log")
        self.access_log = os.path.join(directory, "access.log")

    @property
    def target(self):
        return f"{sp.LOOPBACK}:{self.port}"

    def argv(self):
        return [self.binary, "-p", self.dir + "/", "-c", self.conf, "-e", self.error_log]

    def log(self):
        try:
            with open(self.error_log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return "(no error log)"

    def start(self):
        for _ in range(3):  # another process may take the free port first
            self.port = free_port()
            servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=10s;"
                                for u in self.upstreams)
            with open(self.conf, "w", encoding="utf-8") as f:
                f.write(NGINX_CONF.format(dir=self.dir, servers=servers, port=self.port))
            if os.path.exists(self.error_log):
                os.remove(self.error_log)  # this attempt's messages only
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         env=sp.loopback_env(), preexec_fn=sp._die_with_parent)
            deadline = time.monotonic() + NGINX_START_TIMEOUT_S
            while time.monotonic() < deadline and self.proc.poll() is None:
                if accepts(self.port):
                    # Whoever accepts may be another process that took the
                    # port after free_port() let it go, while nginx fails to
                    # bind it: nginx must still run and have said nothing
                    # fatal.
                    time.sleep(0.2)
                    if self.proc.poll() is None and "[emerg]" not in self.log():
                        return
                    break
                time.sleep(0.05)
            address_taken = "Address already in use" in self.log()
            if self.proc.poll() is None and not address_taken:
                self.stop()
                raise AssertionError(f"nginx did not listen on {self.target} within "
                                     f"{NGINX_START_TIMEOUT_S:.0f} s\n{self.log()}")
            self.stop()  # nginx retries a busy port for 2.5 s: not worth waiting
            if not address_taken:
                break
        raise AssertionError(f"nginx exited with {self.proc.returncode}: "
                             f"{shlex.join(self.argv())}\n--- error log ---\n{self.log()}")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGQUIT)  # graceful
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def records(self):
        """The access log: one (upstreams tried, HTTP status, grpc-status)
        per request nginx served."""
        out = []
        with open(self.access_log, encoding="utf-8") as f:
            for line in f:
                addr, status, _, head_grpc, trailer_grpc = line.rstrip("\n").split("|")
                grpc_status = head_grpc if head_grpc != "-" else trailer_grpc
                out.append(([a.strip() for a in addr.split(",")], status, grpc_status))
        return out


def progress(message):
    """A line on stderr at once: if ctest's timeout kills the test, the last
    line says which phase it was in (unittest's own line for the test waits
    for its newline until the test ends)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def served(server):
    """Successful inference requests `server` has answered (ModelStatistics),
    or None when it no longer answers."""
    try:
        with grpc.insecure_channel(server.target,
                                   options=[("grpc.enable_http_proxy", 0)]) as channel:
            r = pb_grpc.GRPCInferenceServiceStub(channel).ModelStatistics(
                pb.ModelStatisticsRequest(name=MODEL), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError:
        return None
    return sum(s.inference_stats.success.count for s in r.model_stats)


class LoadBalancingTest(unittest.TestCase):
    def setUp(self):
        sp.require_load(self, LOAD)
        self.tmp = tempfile.TemporaryDirectory(prefix="reluserve-lb-")
        self.addCleanup(self.tmp.cleanup)
        self.replicas = []
        self.addCleanup(self.stop_replicas)
        progress(f"starting {REPLICAS} replicas")
        for _ in range(REPLICAS):
            server = sp.ServerProcess(ARGS.server, SERVER_ARGS)
            self.replicas.append(server)
            server.start()

    def stop_replicas(self):
        progress("stopping the replicas")
        for server in self.replicas:
            server.stop(expect_code=None)

    def start_load(self, target, seconds, json_path):
        argv = [LOAD, "--target", target, *LOAD_ARGS, "--duration", str(seconds),
                "--json", json_path]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=sp.loopback_env(),
                                preexec_fn=sp._die_with_parent)
        return argv, proc

    def finish_load(self, argv, proc, json_path, context=""):
        """Waits for reluserve-load; asserts it exited 0 with no failed
        request; returns its report's step."""
        try:
            stdout, stderr = proc.communicate(timeout=LOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate(timeout=5)
            replica_logs = "".join(f"--- replica {i} ---\n{r.log()[-2000:]}"
                                   for i, r in enumerate(self.replicas))
            self.fail(f"{shlex.join(argv)} still running after {LOAD_TIMEOUT_S:.0f} s\n"
                      f"{context}\n--- stderr ---\n"
                      f"{stderr.decode('utf-8', 'replace')[-3000:]}{replica_logs}")
        logs = "".join(f"--- replica {i} ---\n{s.log()[-3000:]}"
                       for i, s in enumerate(self.replicas))
        context = (f"{shlex.join(argv)}: exit {proc.returncode}\n{context}\n--- stdout ---\n"
                   f"{stdout.decode('utf-8', 'replace')}--- stderr ---\n"
                   f"{stderr.decode('utf-8', 'replace')}{logs}")
        self.assertEqual(proc.returncode, 0, context)
        with open(json_path, encoding="utf-8") as f:
            steps = json.load(f)["steps"]
        self.assertEqual(len(steps), 1, context)
        step = steps[0]
        self.assertEqual(step["errors"], 0, context)
        self.assertEqual(step["errors_by_code"], {}, context)
        self.assertFalse(step["server_gone"], context)
        self.assertGreater(step["successes"], 0, context)
        return step

    def counts(self):
        return [served(s) for s in self.replicas]

    def spread_then_fail_over(self, target, name, nginx=None):
        """One run that spreads over the replicas, then one during which
        replica 0 drains and exits. Returns the summary lines."""
        json_path = os.path.join(self.tmp.name, f"{name}.json")
        before = self.counts()
        progress(f"{name}: spread run")
        argv, proc = self.start_load(target, SPREAD_S, json_path)
        step = self.finish_load(argv, proc, json_path)
        after = self.counts()
        split = [a - b for a, b in zip(after, before)]
        for i, n in enumerate(split):
            self.assertGreater(n, 0, f"{name}: replica {i} served nothing: {split}")
        lines = [f"{name}, spread: {shlex.join(argv)}",
                 f"  sent {step['requests']}, failed {step['errors']}, "
                 f"{step['requests_per_second']:.0f} req/s, p99 {step['latency_ms']['p99']:.2f} ms; "
                 f"served per replica {split}"]

        before = self.counts()
        progress(f"{name}: failover run")
        argv, proc = self.start_load(target, FAILOVER_S, json_path)
        time.sleep(STOP_AFTER_S)
        self.assertIsNone(proc.poll(), "reluserve-load ended before the replica was stopped")
        stopped = self.replicas[0]
        at_stop = served(stopped)
        progress(f"{name}: SIGTERM to replica 0")
        stopped.send_signal(signal.SIGTERM)
        code = stopped.wait_exit(timeout=30)
        self.assertEqual(code, 0, f"the drained replica exited {code}\n{stopped.log()}")
        nginx_seen = ""
        if nginx is not None:
            records = nginx.records()
            unavailable = sum(1 for _, _, g in records if g == "14")
            bad_gateway = sum(1 for _, status, _ in records if status == "502")
            moved = sum(1 for addrs, _, _ in records if len(addrs) > 1)
            nginx_seen = (f"; nginx passed on {unavailable} UNAVAILABLE answers and "
                          f"{bad_gateway} 502s (the client retried them), and moved "
                          f"{moved} requests to the next upstream itself")
        step = self.finish_load(argv, proc, json_path,
                                context=f"replica 0 ({stopped.target}) got SIGTERM after "
                                        f"{STOP_AFTER_S} s\n" + (nginx.log() if nginx else ""))
        after = self.counts()
        self.assertIsNone(after[0])  # gone
        split = [(at_stop if i == 0 else a) - b
                 for i, (a, b) in enumerate(zip(after, before))]
        for i, n in enumerate(split):
            self.assertGreater(n, 0, f"{name}: replica {i} served nothing: {split}")
        lines += [f"{name}, failover (SIGTERM to replica 0 after {STOP_AFTER_S:.0f} s of "
                  f"{FAILOVER_S:.0f}): {shlex.join(argv)}",
                  f"  sent {step['requests']}, failed {step['errors']}, "
                  f"{step['requests_per_second']:.0f} req/s, p99 {step['latency_ms']['p99']:.2f} ms, "
                  f"max {step['latency_ms']['max']:.2f} ms; served per replica {split} "
                  f"(replica 0 until its SIGTERM){nginx_seen}"]
        return lines

    def test_through_nginx(self):
        binary = NGINX_ARGS.nginx
        self.assertTrue(binary and os.path.isfile(binary) and os.access(binary, os.X_OK),
                        f"nginx not found ({binary!r}): apt-get install nginx "
                        "(scripts/install-deps.sh does)")
        nginx = Nginx(binary, self.tmp.name, [s.target for s in self.replicas])
        progress("nginx: starting")
        nginx.start()
        self.addCleanup(nginx.stop)
        lines = self.spread_then_fail_over(nginx.target, "nginx", nginx)
        sys.stderr.write("\n" + "\n".join(lines) + "\n")

    def test_round_robin_over_an_address_list(self):
        target = "ipv4:" + ",".join(s.target for s in self.replicas)
        lines = self.spread_then_fail_over(target, "round_robin")
        sys.stderr.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
