#!/usr/bin/python3
"""The server's bounds under load, against the real reluserve-server on
127.0.0.1 (docs/api.md, "Memory bounds" and "Connections"):

- concurrent calls per connection (--max-concurrent-streams): advertised in
  the server's SETTINGS; a raw HTTP/2 client that opens more gets the extra
  stream refused (RST_STREAM REFUSED_STREAM, which gRPC clients see as
  UNAVAILABLE); a gRPC client queues the extra call until one ends, while
  another connection is served;
- the byte budget (--max-pending-bytes) under 16 concurrent requests with
  16 MiB replies: UNAVAILABLE with the retry hint past it, OK otherwise, and
  the server's RSS far below what the replies would hold unbounded;
- a request whose deadline passes while it is queued behind a slow one gets
  DEADLINE_EXCEEDED and costs no compute (ModelStatistics);
- a call cancelled while queued is not computed, and /metrics shows nothing
  pending afterwards;
- HTTP/REST connections that send half a header and stall are dropped after
  the read timeout (cpp-httplib's 5 s), and the --http-threads they held
  serve other clients again.

    /usr/bin/python3 -B limits_under_load_test.py --server PATH --stubs DIR [-v]

Every wait is bounded in time and every request loop in count.
"""

import sys

sys.dont_write_bytecode = True

import os  # noqa: E402
import pathlib  # noqa: E402
import queue  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402
import urllib.request  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import http2_frames as h2  # noqa: E402
import server_process as sp  # noqa: E402

ARGS, UNITTEST_ARGV = sp.parse_cli(sys.argv, need_client=False)
if ARGS.stubs:
    sys.path.insert(0, os.path.abspath(ARGS.stubs))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
import http_client as hc  # noqa: E402

MODEL = "linear_relu"
RPC_TIMEOUT_S = 60.0
START_ATTEMPTS = 3
# cpp-httplib's CPPHTTPLIB_READ_TIMEOUT_SECOND, which the REST front end keeps,
# and the front end's keep-alive wait after the 400 (kKeepAliveSeconds).
HTTP_READ_TIMEOUT_S = 5.0
HTTP_KEEP_ALIVE_S = 2.0


def request(n, k, m=None, request_id=""):
    """x [n, k] of ones, and with `m` grad_y [n, m] (the backward pass)."""
    req = pb.ModelInferRequest(model_name=MODEL, id=request_id)
    for name, cols in (("x", k), ("grad_y", m)):
        if cols is not None:
            req.inputs.add(name=name, datatype="FP32", shape=[n, cols])
            req.raw_input_contents.append(np.ones((n, cols), np.float32).tobytes())
    return req


def metric(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line[len(series) + 1:])
    return None


class Server:
    """A reluserve-server child with `args`, its /metrics (when `metrics`)
    and HTTP/REST (when `http`) on free ports, a channel and a stub."""

    def __init__(self, args, metrics=False, http=False, env=None):
        self.args, self.metrics, self.http = [str(a) for a in args], metrics, http
        self.env = dict(env or {})
        self.metrics_port = self.http_port = None

    def __enter__(self):
        for attempt in range(START_ATTEMPTS):
            extra = []
            if self.metrics:
                self.metrics_port = sp.free_port()
                extra += ["--metrics-port", self.metrics_port]
            if self.http:
                extra += ["--http-port", sp.free_port()]
            # A small ASan quarantine, so that RSS means what the server holds.
            asan = ":".join(o for o in (os.environ.get("ASAN_OPTIONS"),
                                        "quarantine_size_mb=16") if o)
            self.process = sp.ServerProcess(ARGS.server, [*self.args, *extra],
                                            env={"ASAN_OPTIONS": asan, **self.env})
            try:
                self.process.start()
                break
            except sp.ServerError:
                if attempt + 1 == START_ATTEMPTS or "in use" not in self.process.log().lower():
                    raise
        if self.http:
            self.http_port = hc.wait_http(self.process)
        self.channel = self.new_channel()
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        return self

    def __exit__(self, exc_type, exc, tb):
        self.channel.close()
        return self.process.__exit__(exc_type, exc, tb)

    def new_channel(self):
        """A channel of its own connection (no shared subchannel)."""
        channel = grpc.insecure_channel(self.process.target, options=[
            ("grpc.enable_http_proxy", 0), ("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
        grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
        return channel

    def statistics(self):
        return self.stub.ModelStatistics(pb.ModelStatisticsRequest(name=MODEL),
                                         timeout=RPC_TIMEOUT_S).model_stats[0]

    def scrape(self):
        url = f"http://{sp.LOOPBACK}:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode("utf-8")


class ConcurrentStreamsTest(unittest.TestCase):
    LIMIT = 4
    K, M = 16, 4

    def test_raw_client_gets_the_extra_stream_refused(self):
        with Server(["--in-features", self.K, "--out-features", self.M,
                     "--max-concurrent-streams", self.LIMIT]) as server:
            conn = h2.http2_connection(sp.LOOPBACK, server.process.port)
            try:
                got = h2.read_until(conn, lambda data: any(
                    f[0] == h2.SETTINGS and not f[1] & h2.ACK for f in h2.frames(data)), 10)
                advertised = [h2.settings(f[3]) for f in h2.frames(got)
                              if f[0] == h2.SETTINGS and not f[1] & h2.ACK]
                self.assertTrue(advertised, f"no SETTINGS from the server: {h2.frames(got)}")
                self.assertEqual(advertised[0].get(h2.SETTINGS_MAX_CONCURRENT_STREAMS),
                                 self.LIMIT, advertised)
                # The limit binds once the client has acknowledged it.
                conn.sendall(h2.frame(h2.SETTINGS, h2.ACK))
                path = "/inference.GRPCInferenceService/ModelInfer"
                for stream in range(1, 2 * self.LIMIT, 2):  # open, awaiting a message
                    conn.sendall(h2.grpc_headers(stream, path, server.process.target))
                within = h2.read_until(conn, lambda data: any(
                    f[0] in (h2.HEADERS, h2.RST_STREAM) for f in h2.frames(data)), 1.0)
                extra = 2 * self.LIMIT + 1
                conn.sendall(h2.grpc_headers(extra, path, server.process.target))
                got = h2.read_until(conn, lambda data: len(
                    [f for f in h2.frames(data) if f[0] == h2.RST_STREAM]) >= self.LIMIT, 10)
            finally:
                conn.close()
            self.assertEqual([f[0] for f in h2.frames(within)
                              if f[0] in (h2.HEADERS, h2.RST_STREAM)], [],
                             "streams within the limit were ended")
            # gRPC 1.51 takes a stream beyond the limit for a broken connection:
            # every call on it ends UNAVAILABLE (trailers-only, grpc-status 14,
            # as its encoder writes it), none beyond the limit is served.
            ended = {f[2]: f[3] for f in h2.frames(got) if f[0] == h2.HEADERS}
            self.assertEqual(sorted(ended), list(range(1, 2 * self.LIMIT, 2)),
                             f"frames {[(f[0], f[2]) for f in h2.frames(got)]}")
            for stream, block in ended.items():
                self.assertIn(b"\x0bgrpc-status\x0214", block, (stream, block))
            # The server is fine afterwards.
            self.assertTrue(server.stub.ServerReady(pb.ServerReadyRequest(),
                                                    timeout=RPC_TIMEOUT_S).ready)

    def test_grpc_client_queues_the_extra_call_and_another_connection_is_served(self):
        with Server(["--in-features", self.K, "--out-features", self.M,
                     "--max-concurrent-streams", self.LIMIT]) as server:
            release = threading.Event()
            streams = []

            def held(i):
                yield request(1, self.K, request_id=f"held-{i}")
                release.wait(RPC_TIMEOUT_S)  # then half-close

            try:
                for i in range(self.LIMIT):  # every stream the connection may have
                    call = server.stub.ModelStreamInfer(held(i), timeout=RPC_TIMEOUT_S)
                    self.assertEqual(next(call).infer_response.id, f"held-{i}")
                    streams.append(call)
                start = time.monotonic()
                with self.assertRaises(grpc.RpcError) as cm:
                    server.stub.ModelInfer(request(1, self.K), timeout=1.5)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
                self.assertGreaterEqual(time.monotonic() - start, 1.4)
                other = server.new_channel()
                try:
                    reply = pb_grpc.GRPCInferenceServiceStub(other).ModelInfer(
                        request(1, self.K, request_id="other"), timeout=RPC_TIMEOUT_S)
                    self.assertEqual(reply.id, "other")
                finally:
                    other.close()
                # One stream ends: the queued call goes through.
                waiting = server.stub.ModelInfer.future(request(1, self.K, request_id="next"),
                                                        timeout=RPC_TIMEOUT_S)
                time.sleep(0.3)
                self.assertFalse(waiting.done(), "a fifth call ran beside four streams")
                release.set()
                self.assertEqual(waiting.result().id, "next")
                for call in streams:
                    self.assertEqual(list(call), [])
                    self.assertEqual(call.code(), grpc.StatusCode.OK)
            finally:
                release.set()
                for call in streams:
                    call.cancel()


class ByteBudgetUnderLoadTest(unittest.TestCase):
    """Forward+backward through 2048 x 2048 at N = 1: 16 KiB in, a 16 MiB
    grad_weight out. 16 callers, 8 requests each, against a 40 MiB budget:
    at most two replies are held at once, and everyone else is told to come
    back."""

    K = M = 2048
    CALLERS, EACH = 16, 8
    BUDGET = 40 << 20

    def test_requests_past_the_budget_get_unavailable_and_rss_stays_bounded(self):
        # One malloc arena: otherwise each of gRPC's threads keeps the
        # 16 MiB blocks it freed in an arena of its own, and RSS counts those.
        with Server(["--in-features", self.K, "--out-features", self.M,
                     "--max-batch", 4, "--max-pending-bytes", self.BUDGET],
                    env={"MALLOC_ARENA_MAX": "1"}) as server:
            pid = server.process.pid
            server.stub.ModelInfer(request(1, self.K, self.M), timeout=RPC_TIMEOUT_S)
            rss_start = sp.rss_bytes(pid)
            results = queue.Queue()

            def caller():
                for _ in range(self.EACH):
                    try:
                        reply = server.stub.ModelInfer(request(1, self.K, self.M),
                                                       timeout=RPC_TIMEOUT_S)
                        results.put(("OK", len(reply.raw_output_contents[2])))
                    except grpc.RpcError as e:
                        results.put((e.code().name, e.details()))

            threads = [threading.Thread(target=caller, daemon=True)
                       for _ in range(self.CALLERS)]
            for thread in threads:
                thread.start()
            peak = rss_start
            deadline = time.monotonic() + 120
            while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
                peak = max(peak, sp.rss_bytes(pid))
                time.sleep(0.01)
            for thread in threads:
                thread.join(timeout=5)
            answers = [results.get_nowait() for _ in range(results.qsize())]
            codes = {c: sum(1 for a in answers if a[0] == c) for c in {a[0] for a in answers}}
            print(f"\n  {codes}; server RSS {rss_start >> 20} MiB before, peak {peak >> 20} "
                  f"MiB (unbounded: {self.CALLERS} x 16 MiB replies)", file=sys.stderr)
            self.assertEqual(len(answers), self.CALLERS * self.EACH)
            self.assertEqual(set(codes) - {"OK", "UNAVAILABLE"}, set(), answers[:5])
            self.assertGreater(codes.get("OK", 0), 0)
            self.assertGreater(codes.get("UNAVAILABLE", 0), 0, "the budget never bound")
            for code, detail in answers:
                if code == "OK":
                    self.assertEqual(detail, self.K * self.M * 4)
                else:
                    self.assertIn("retry after a short backoff", detail)
            # The budget, gRPC's buffers, per-thread scratchpads and the
            # allocator's slack; 16 replies held at once would be 256 MiB more.
            self.assertLess(peak - rss_start, self.BUDGET + (96 << 20))
            reply = server.stub.ModelInfer(request(1, self.K, self.M, "after"),
                                           timeout=RPC_TIMEOUT_S)
            self.assertEqual(reply.id, "after")


class QueuedWorkTest(unittest.TestCase):
    """One compute thread held by a forward+backward pass of N = 2048
    through 4096 x 4096 (1.4-2.2 s on a quiet machine; through 2048 x 2048
    it took 0.35 s there, shorter than the queued requests' deadline), and
    small requests queued behind it."""

    K = M = 4096
    SLOW_N = 2048

    def start_slow(self, server):
        slow = server.stub.ModelInfer.future(request(self.SLOW_N, self.K, self.M, "slow"),
                                             timeout=RPC_TIMEOUT_S)
        # Its 64 MiB have arrived once it is pending; then the thread takes it.
        deadline = time.monotonic() + 30
        while self.pending(server) < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        self.assertFalse(slow.done(), "the slow request finished before the test")
        return slow

    def pending(self, server):
        return metric(server.scrape(), 'nv_inference_pending_request_count{'
                      'model="linear_relu",version="1"}') or 0

    def server(self):
        return Server(["--in-features", self.K, "--out-features", self.M, "--max-batch",
                       self.SLOW_N, "--compute-threads", 1], metrics=True)

    def test_deadline_passed_in_the_queue_costs_no_compute(self):
        with self.server() as server:
            before = server.statistics()
            slow = self.start_slow(server)
            queued = [server.stub.ModelInfer.future(request(2, self.K, request_id=f"late-{i}"),
                                                    timeout=0.3) for i in range(3)]
            for future in queued:
                self.assertEqual(future.exception(timeout=10).code(),
                                 grpc.StatusCode.DEADLINE_EXCEEDED)
            self.assertEqual(slow.result().id, "slow")
            after = self.wait_settled(server, before, failures=3)
            self.assertEqual(after.execution_count - before.execution_count, 1,
                             "a request whose deadline had passed was computed")
            self.assertEqual(after.inference_stats.compute_infer.count
                             - before.inference_stats.compute_infer.count, 1)
            self.assertEqual(after.inference_stats.success.count
                             - before.inference_stats.success.count, 1)
            failures = metric(server.scrape(), 'nv_inference_request_failure{model='
                              '"linear_relu",version="1",reason="REJECTED"}')
            self.assertEqual(failures, 3)

    def test_cancelled_call_is_not_computed_and_frees_its_work(self):
        with self.server() as server:
            before = server.statistics()
            slow = self.start_slow(server)
            queued = [server.stub.ModelInfer.future(request(2, self.K, request_id=f"gone-{i}"),
                                                    timeout=RPC_TIMEOUT_S) for i in range(4)]
            deadline = time.monotonic() + 10
            while self.pending(server) < 5 and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(self.pending(server), 5, "not all queued behind the slow one")
            for future in queued:
                self.assertTrue(future.cancel())
            self.assertEqual(slow.result().id, "slow")
            after = self.wait_settled(server, before, failures=4)
            self.assertEqual(after.execution_count - before.execution_count, 1,
                             "a cancelled request was computed")
            text = server.scrape()
            self.assertEqual(metric(text, 'nv_inference_request_failure{model="linear_relu",'
                                    'version="1",reason="CANCELED"}'), 4)
            self.assertEqual(self.pending(server), 0)
            reply = server.stub.ModelInfer(request(2, self.K, request_id="after"),
                                           timeout=RPC_TIMEOUT_S)
            self.assertEqual(reply.id, "after")

    def wait_settled(self, server, before, failures):
        """The statistics once `failures` more requests failed (bounded)."""
        deadline = time.monotonic() + 20
        while True:
            after = server.statistics()
            done = after.inference_stats.fail.count - before.inference_stats.fail.count
            if done >= failures or time.monotonic() > deadline:
                self.assertEqual(done, failures)
                return after
            time.sleep(0.05)


class StalledHttpConnectionTest(unittest.TestCase):
    THREADS = 2

    def test_stalled_connections_are_dropped_and_their_threads_serve_again(self):
        with Server(["--in-features", 16, "--out-features", 4, "--http-threads",
                     self.THREADS], http=True) as server:
            stalled = []
            for _ in range(self.THREADS):
                conn = socket.create_connection((sp.LOOPBACK, server.http_port), timeout=30)
                conn.sendall(b"POST /v2/models/linear_relu/infer HTTP/1.1\r\n"
                             b"Host: 127.0.0.1\r\nContent-Le")
                stalled.append(conn)
            start = time.monotonic()
            time.sleep(0.5)  # both taken by a thread
            answered = {}

            def probe():
                with hc.Client(server.http_port, timeout=30) as client:
                    answered["status"] = client.get("/v2/health/live").status
                    answered["at"] = time.monotonic() - start

            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
            dropped = []
            try:
                for conn in stalled:
                    conn.settimeout(HTTP_READ_TIMEOUT_S + HTTP_KEEP_ALIVE_S + 10)
                    reply, first = b"", None
                    for _ in range(1000):  # bounded; ends at EOF
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        first = first or time.monotonic() - start
                        reply += chunk
                    dropped.append((first, time.monotonic() - start, reply[:12]))
            finally:
                for conn in stalled:
                    conn.close()
            prober.join(timeout=30)
            print("\n  stalled connections: " + ", ".join(
                f"{r!r} after {t:.2f} s, closed after {c:.2f} s" for t, c, r in dropped)
                + f"; the probe answered {answered.get('status')} after "
                f"{answered.get('at', 0):.2f} s", file=sys.stderr)
            bound = HTTP_READ_TIMEOUT_S + HTTP_KEEP_ALIVE_S
            for first, closed, reply in dropped:
                self.assertTrue(reply.startswith(b"HTTP/1.1 400"), reply)
                self.assertLess(first, HTTP_READ_TIMEOUT_S + 3)
                self.assertLess(closed, bound + 3)
            self.assertEqual(answered.get("status"), 200)
            # It waited for a thread: both were held until then, not for ever.
            self.assertGreater(answered["at"], HTTP_READ_TIMEOUT_S - 1)
            self.assertLess(answered["at"], bound + 3)


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
