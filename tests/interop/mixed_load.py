"""A closed-loop mixed load against one real reluserve-server, over gRPC and
HTTP/REST at once, that records every request's outcome: what the drain
test (drain_under_load_test.py) and the soak (scripts/soak.py) share.

Each worker thread keeps one request in flight and has one kind:
    grpc_forward, grpc_backward (grad_y), grpc_bf16   unary ModelInfer
    grpc_stream                                       ModelStreamInfer, one
                                                      message at a time on a
                                                      stream kept open
    rest_forward, rest_backward, rest_bf16            POST .../infer with
                                                      binary tensors
Every `bad_every`-th request of a worker is malformed on purpose (x one
column too wide): INVALID_ARGUMENT (gRPC, also in a stream's error_message)
or 400 (REST), which `Outcome.expected` tells from the rest.

Every answer that is OK is checked against a float64 numpy reference of the
served weights (bfloat16-representable, so one reference serves FP32 and
BF16). Every request has a unique id (`<worker>-<n>`) that the server's
access log repeats, and every wait is bounded: each call by `timeout_s`, each
worker by `deadline` and `max_requests`.

Import after the stubs are on sys.path (the tests' parse_cli does it).
"""

import http.client
import queue
import socket
import threading
import time

import grpc
import numpy as np

import grpc_service_pb2 as pb
import grpc_service_pb2_grpc as pb_grpc
import http_client as hc
import server_process as sp
from tensor_files import bf16_round, from_raw, raw_bytes

MODEL = "linear_relu"
KINDS = ("grpc_forward", "grpc_backward", "grpc_bf16", "grpc_stream",
         "rest_forward", "rest_backward", "rest_bf16")
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0),
                   ("grpc.max_receive_message_length", 256 << 20),
                   ("grpc.max_send_message_length", 256 << 20)]
FP32_RTOL = 1e-5
BF16_RTOL = 1e-2  # bfloat16 outputs: 2^-9 relative per value, and some slack
# No ReLU pre-activation of the inputs within this fraction of its scale of
# 0, so that fp32 and float64 agree on every mask.
MARGIN = 1e-4
# What the server answers that is no failure of the server.
ANSWERED = {"OK", "UNAVAILABLE", "INVALID_ARGUMENT"}


def start_server(binary, args, attempts=3):
    """A ServerProcess of `binary` with `args` and its REST front end on a
    free port, started (again if another process took the port first); and
    that port."""
    for attempt in range(attempts):
        server = sp.ServerProcess(binary, [*args, "--http-port", sp.free_port()])
        try:
            server.start()
            return server, hc.wait_http(server)
        except sp.ServerError:
            if attempt + 1 == attempts or "in use" not in server.log().lower():
                raise
    raise AssertionError("unreachable")


def weights(k, m, seed=7):
    """He-normal W [m, k] and bias [m], both bfloat16-representable."""
    w, b = sp.make_weights(seed, k, m)
    return bf16_round(w), bf16_round(b)


def conditioned_x(w, b, n, seed, rounds=200):
    """x [n, k], bfloat16-representable, whose pre-activations all keep
    MARGIN from 0; bounded by `rounds` batches of candidates."""
    rows = []
    scale_w = np.abs(w.astype(np.float64))
    for round_ in range(rounds):
        cand = bf16_round(np.random.default_rng([seed, round_]).standard_normal(
            (4 * n, w.shape[1])).astype(np.float32))
        pre = cand.astype(np.float64) @ w.T.astype(np.float64) + b
        scale = np.abs(cand.astype(np.float64)) @ scale_w.T + np.abs(b)
        rows.extend(cand[(np.abs(pre) >= MARGIN * scale).all(axis=1)])
        if len(rows) >= n:
            return np.stack(rows[:n])
    raise AssertionError(f"only {len(rows)} of {n} rows keep a margin of {MARGIN}")


class Outcome:
    """One request: kind, id, start and end (time.monotonic()), `code` (a
    gRPC code name; REST statuses as their gRPC twins; REFUSED, RESET,
    TIMEOUT for a connection that failed), `detail`, `wrong` (why the
    numbers of an OK answer are wrong, or None) and `expected` (the code
    the request should get from a serving server)."""

    __slots__ = ("kind", "id", "start", "end", "code", "detail", "wrong", "expected")

    def __init__(self, kind, request_id, start, expected):
        self.kind, self.id, self.start, self.expected = kind, request_id, start, expected
        self.end, self.code, self.detail, self.wrong = None, None, "", None

    def __repr__(self):
        return (f"{self.id} {self.kind} {self.code} {self.detail[:120]!r}"
                f"{' WRONG ' + self.wrong if self.wrong else ''}")


class Case:
    """A worker's request, prepared once: its inputs and the reference."""

    def __init__(self, kind, w, b, n, seed, bad, check=True):
        self.kind = kind
        self.datatype = "BF16" if kind.endswith("bf16") else "FP32"
        self.backward = kind.endswith("backward")
        rng = np.random.default_rng([seed, 1])
        x = (conditioned_x(w, b, n, seed) if check else
             bf16_round(rng.standard_normal((n, w.shape[1])).astype(np.float32)))
        gy = (bf16_round(rng.standard_normal((n, w.shape[0])).astype(np.float32))
              if self.backward else None)
        self.want = ([a for a in sp.reference(x, w, b, gy) if a is not None]
                     if check else None)
        if bad:  # one column too many: INVALID_ARGUMENT, naming x
            x = np.concatenate([x, x[:, :1]], axis=1)
        self.x, self.gy = x, gy
        self.expected = "INVALID_ARGUMENT" if bad else "OK"

    def grpc_request(self, request_id):
        req = pb.ModelInferRequest(model_name=MODEL, id=request_id)
        for name, a in (("x", self.x), ("grad_y", self.gy)):
            if a is not None:
                req.inputs.add(name=name, datatype=self.datatype, shape=list(a.shape))
                req.raw_input_contents.append(raw_bytes(a, self.datatype))
        return req

    def http_inputs(self):
        return [hc.Input(name, a, self.datatype) for name, a in
                (("x", self.x), ("grad_y", self.gy)) if a is not None]

    def check(self, got):
        """None if `got` (output arrays in the default order) matches the
        reference (or nothing is checked), else why not."""
        if self.want is None:
            return None
        if len(got) != len(self.want):
            return f"{len(got)} outputs, expected {len(self.want)}"
        rtol = BF16_RTOL if self.datatype == "BF16" else FP32_RTOL
        for i, (g, want) in enumerate(zip(got, self.want)):
            if g.shape != want.shape:
                return f"output {i}: shape {g.shape}, expected {want.shape}"
            error = np.abs(g.astype(np.float64) - want).max()
            if not error <= rtol * max(np.abs(want).max(), 1e-30):
                return f"output {i}: max|diff| {error:.3g} vs max|ref| {np.abs(want).max():.3g}"
        return None


class MixedLoad:
    """`workers` threads (worker i runs KINDS[i % len(KINDS)] unless `kinds`
    says otherwise) against `grpc_target` and `http_port` until stop() or
    `duration_s`. After an UNAVAILABLE or a failed connection a worker waits
    `backoff_s` before its next request, as a client with a retry policy
    would. outcomes() gives every request; outstanding() those in flight.
    `w` and `b` are the served weights; with `check` False (weights whose
    inputs cannot keep MARGIN) only shapes and codes are looked at."""

    def __init__(self, grpc_target, http_port, w, b, workers=16, kinds=KINDS,
                 batch=lambda i: 4 + i % 13, bad_every=0, timeout_s=20.0,
                 duration_s=60.0, max_requests=1_000_000, backoff_s=0.05, check=True):
        self.target, self.http_port = grpc_target, http_port
        self.timeout_s, self.backoff_s = timeout_s, backoff_s
        self.max_requests = max_requests
        self.bad_every = bad_every
        self.deadline = time.monotonic() + duration_s
        self.kinds = [kinds[i % len(kinds)] for i in range(workers)]
        self.cases = [(Case(kind, w, b, batch(i), i, False, check),
                       Case(kind, w, b, batch(i), i, True, check))
                      for i, kind in enumerate(self.kinds)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes = []
        self._outstanding = {}
        self.channel = grpc.insecure_channel(grpc_target, options=CHANNEL_OPTIONS)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self._threads = [threading.Thread(target=self._worker, args=(i,), daemon=True,
                                          name=f"load-{i}") for i in range(workers)]

    def start(self):
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout=30.0):
        """Stops the workers (each after its request in flight) and waits for
        them, at most `timeout`; returns the workers still running."""
        self._stop.set()
        end = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        self.channel.close()
        return alive

    def outcomes(self):
        with self._lock:
            return list(self._outcomes)

    def outstanding(self):
        with self._lock:
            return list(self._outstanding.values())

    def count(self, code="OK"):
        with self._lock:
            return sum(1 for o in self._outcomes if o.code == code)

    # -- workers ---------------------------------------------------------------
    def _running(self, sent):
        return (not self._stop.is_set() and time.monotonic() < self.deadline
                and sent < self.max_requests)

    def _begin(self, worker, n, bad):
        case = self.cases[worker][1 if bad else 0]
        outcome = Outcome(case.kind, f"{worker}-{n}", time.monotonic(), case.expected)
        with self._lock:
            self._outstanding[outcome.id] = outcome
        return case, outcome

    def _end(self, outcome, code, detail="", got=None, case=None):
        outcome.end, outcome.code, outcome.detail = time.monotonic(), code, detail
        if code == "OK" and case is not None:
            outcome.wrong = case.check(got)
        with self._lock:
            self._outstanding.pop(outcome.id, None)
            self._outcomes.append(outcome)
        if code not in ("OK", "INVALID_ARGUMENT"):
            self._stop.wait(self.backoff_s)

    def _worker(self, worker):
        kind = self.kinds[worker]
        if kind == "grpc_stream":
            return self._stream_worker(worker)
        rest = hc.Client(self.http_port, timeout=self.timeout_s) if kind.startswith(
            "rest") else None
        n = 0
        try:
            while self._running(n):
                bad = self.bad_every > 0 and n % self.bad_every == self.bad_every - 1
                case, outcome = self._begin(worker, n, bad)
                n += 1
                if rest is None:
                    self._unary(case, outcome)
                else:
                    self._rest(rest, case, outcome)
        finally:
            if rest is not None:
                rest.close()

    def _unary(self, case, outcome):
        try:
            reply = self.stub.ModelInfer(case.grpc_request(outcome.id),
                                         timeout=self.timeout_s)
        except grpc.RpcError as e:
            return self._end(outcome, e.code().name, e.details() or "")
        got = [from_raw(blob, t.datatype, tuple(t.shape))
               for t, blob in zip(reply.outputs, reply.raw_output_contents)]
        detail = "" if reply.id == outcome.id else f"reply id {reply.id!r}"
        self._end(outcome, "OK", detail, got, case)
        if detail:
            outcome.wrong = detail

    def _rest(self, rest, case, outcome):
        try:
            resp = rest.infer(MODEL, case.http_inputs(), request_id=outcome.id)
        except ConnectionRefusedError as e:
            return self._end(outcome, "REFUSED", str(e))
        except (http.client.HTTPException, ConnectionError, BrokenPipeError) as e:
            return self._end(outcome, "RESET", repr(e))
        except socket.timeout as e:
            return self._end(outcome, "TIMEOUT", repr(e))
        if resp.status != 200:
            code = {503: "UNAVAILABLE", 400: "INVALID_ARGUMENT"}.get(
                resp.status, f"HTTP_{resp.status}")
            return self._end(outcome, code, resp.body[:200].decode("utf-8", "replace"))
        try:
            decoded = hc.decode_inference(resp)
        except (AssertionError, ValueError) as e:
            return self._end(outcome, "BAD_REPLY", str(e))
        self._end(outcome, "OK", "", list(decoded.outputs.values()), case)
        if decoded.header.get("id") != outcome.id:
            outcome.wrong = f"reply id {decoded.header.get('id')!r}"

    def _stream_worker(self, worker):
        """One stream at a time, one message in flight on it; a new stream
        after the old one failed, refused a message or carried 500."""
        n = 0
        while self._running(n):
            requests = queue.Queue()
            call = self.stub.ModelStreamInfer(iter(requests.get, None),
                                              timeout=self.timeout_s + 30)
            # A new stream well before the deadline, which covers them all.
            opened = time.monotonic()
            try:
                for _ in range(500):
                    if (not self._running(n)
                            or time.monotonic() - opened > self.timeout_s):
                        break
                    bad = self.bad_every > 0 and n % self.bad_every == self.bad_every - 1
                    case, outcome = self._begin(worker, n, bad)
                    n += 1
                    requests.put(case.grpc_request(outcome.id))
                    try:
                        reply = next(call)
                    except grpc.RpcError as e:
                        self._end(outcome, e.code().name, e.details() or "")
                        break
                    except StopIteration:
                        self._end(outcome, "RESET", "the stream ended without a reply")
                        break
                    if reply.error_message:
                        code = reply.error_message.split(":", 1)[0]
                        self._end(outcome, code, reply.error_message)
                        if code != "INVALID_ARGUMENT":
                            break
                        continue
                    r = reply.infer_response
                    got = [from_raw(blob, t.datatype, tuple(t.shape))
                           for t, blob in zip(r.outputs, r.raw_output_contents)]
                    self._end(outcome, "OK", "", got, case)
                    if r.id != outcome.id:
                        outcome.wrong = f"reply id {r.id!r}"
            finally:
                requests.put(None)  # half-close; then the status
                try:
                    for _ in call:  # nothing more is expected; bounded by its deadline
                        break
                except grpc.RpcError:
                    pass
