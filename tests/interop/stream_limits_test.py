#!/usr/bin/python3
"""Interop test of the server's limits against hostile or careless clients,
over real sockets to the real reluserve-server on 127.0.0.1 (Debian's
python3-grpcio, stubs from Debian's protoc + grpc_python_plugin):

- a ModelStreamInfer client that sends and never reads: the server stops
  reading (HTTP/2 flow control stalls the client's sends) and its memory
  stays bounded;
- an unparseable message in the middle of a stream: the replies before it,
  then a non-OK status saying so (never OK with messages left unanswered);
- a valid request whose reply would exceed the server's send limit (a long
  id, BF16 inputs asking for FP32 outputs): INVALID_ARGUMENT before compute,
  and on a stream one error_message while the stream goes on.

Only the server's default limits are relied on (no limit flags).

    /usr/bin/python3 -B stream_limits_test.py --server PATH --stubs DIR [-v]

Every wait is bounded in time and every request loop in count.
"""

import sys

sys.dont_write_bytecode = True

import os  # noqa: E402
import pathlib  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402

ARGS, UNITTEST_ARGV = sp.parse_cli(sys.argv, need_client=False)
if ARGS.stubs:
    sys.path.insert(0, os.path.abspath(ARGS.stubs))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402

MODEL = "linear_relu"
RPC_TIMEOUT_S = 20.0
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0),
                   ("grpc.max_receive_message_length", 256 << 20),
                   ("grpc.max_send_message_length", 256 << 20)]
STREAM_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"


def forward_request(n, k, request_id="", seed=0, datatype="FP32", grad_m=None):
    """A valid request: x [n, k] in `datatype` (FP32 or BF16), and with
    `grad_m` also grad_y [n, grad_m] (the backward pass)."""
    rng = np.random.default_rng(seed)
    req = pb.ModelInferRequest(model_name=MODEL, id=request_id)
    tensors = [("x", (n, k))] + ([("grad_y", (n, grad_m))] if grad_m else [])
    for name, shape in tensors:
        values = rng.standard_normal(shape).astype(np.float32)
        req.inputs.add(name=name, datatype=datatype, shape=list(shape))
        req.raw_input_contents.append(to_wire(values, datatype))
    return req


def to_wire(array, datatype):
    a = np.ascontiguousarray(array, dtype="<f4")
    if datatype == "BF16":
        return (a.view("<u4") >> 16).astype("<u2").tobytes()
    return a.tobytes()


def send_limit(k, m, max_batch):
    """The server's send limit (docs/api.md, "Message size")."""
    return max_batch * (k + m) * 4 + (k + 1) * m * 4 + (1 << 20)


class Server:
    """A reluserve-server child, a channel and a stub, for one `with` block."""

    def __init__(self, args):
        # Under AddressSanitizer freed memory waits in a 256 MiB quarantine
        # before reuse, which RSS would count as held by the server; a small
        # quarantine keeps the RSS bound meaningful there (the variable is
        # ignored by a binary built without ASan).
        asan = ":".join(o for o in (os.environ.get("ASAN_OPTIONS"),
                                    "quarantine_size_mb=16") if o)
        self.process = sp.ServerProcess(ARGS.server, args,
                                        env={"ASAN_OPTIONS": asan})

    def __enter__(self):
        self.process.start()
        try:
            self.channel = grpc.insecure_channel(self.process.target,
                                                 options=CHANNEL_OPTIONS)
            grpc.channel_ready_future(self.channel).result(timeout=RPC_TIMEOUT_S)
        except BaseException:
            self.process.stop(expect_code=None)
            raise
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        return self

    def __exit__(self, exc_type, exc, tb):
        self.channel.close()
        return self.process.__exit__(exc_type, exc, tb)

    def statistics(self):
        response = self.stub.ModelStatistics(pb.ModelStatisticsRequest(name=MODEL),
                                             timeout=RPC_TIMEOUT_S)
        return response.model_stats[0]


class UnreadStreamTest(unittest.TestCase):
    """(a) Sends 300 messages of N=256 (3 MB each, K=3072) and never reads a
    reply. Before the bound the server read them all and kept every one
    (RSS 27 MB -> ~1 GB); now it stops reading after a few, the client's
    sends stall, and RSS stays far below 400 MB."""

    K, M, N = 3072, 100, 256
    MESSAGES = 300
    RSS_LIMIT = 400 << 20
    STALL_S = 3.0      # no send completing for this long: stalled
    BUDGET_S = 40.0    # the whole attempt, at most

    def run_unread_stream(self, extra_args):
        with Server(["--in-features", self.K, "--out-features", self.M,
                     "--max-batch", self.N, *extra_args]) as server:
            pid = server.process.pid
            rss_start = sp.rss_bytes(pid)
            request = forward_request(self.N, self.K, request_id="unread")
            sent = [0]
            stop = threading.Event()

            def requests():
                for _ in range(self.MESSAGES):
                    if stop.is_set():
                        return
                    yield request
                    sent[0] += 1

            call = server.stub.ModelStreamInfer(requests(), timeout=self.BUDGET_S + 20)
            peak = rss_start
            last_progress, last_sent = time.monotonic(), 0
            deadline = time.monotonic() + self.BUDGET_S
            try:
                while time.monotonic() < deadline and sent[0] < self.MESSAGES:
                    time.sleep(0.1)
                    peak = max(peak, sp.rss_bytes(pid))
                    if sent[0] != last_sent:
                        last_sent, last_progress = sent[0], time.monotonic()
                    elif time.monotonic() - last_progress > self.STALL_S:
                        break
                peak = max(peak, sp.rss_bytes(pid))
            finally:
                stop.set()
                call.cancel()
            print(f"\n  {extra_args or 'inline'}: {sent[0]} of {self.MESSAGES} sends "
                  f"completed; server RSS {rss_start >> 20} MiB at start, peak "
                  f"{peak >> 20} MiB", file=sys.stderr)
            self.assertLess(sent[0], self.MESSAGES,
                            "every send completed: the server kept reading a stream "
                            "whose replies nobody reads")
            self.assertLess(peak, self.RSS_LIMIT,
                            f"server RSS reached {peak >> 20} MiB")
            # The server is fine afterwards.
            reply = server.stub.ModelInfer(forward_request(2, self.K, "after"),
                                           timeout=RPC_TIMEOUT_S)
            self.assertEqual(reply.id, "after")

    def test_inline_compute(self):
        self.run_unread_stream([])

    def test_compute_thread_and_short_queue(self):
        self.run_unread_stream(["--compute-threads", 1, "--max-queue-size", 4])


class UnparseableStreamMessageTest(unittest.TestCase):
    """(b) [good, b"\\x08", good, good] as raw bytes: b"\\x08" is the tag of
    a varint field with the varint missing, so it cannot be parsed. The first
    message is answered, then the stream ends with a status that says what
    happened; it used to end OK with the last two unanswered."""

    K, M = 16, 4

    def test_unparseable_message_ends_the_stream_with_an_error(self):
        with Server(["--in-features", self.K, "--out-features", self.M,
                     "--max-batch", 8]) as server:
            raw_stream = server.channel.stream_stream(
                STREAM_METHOD, request_serializer=None, response_deserializer=None)
            good = [forward_request(2, self.K, request_id=f"good-{i}",
                                    seed=i).SerializeToString() for i in range(3)]
            messages = [good[0], b"\x08", good[1], good[2]]
            replies = []
            with self.assertRaises(grpc.RpcError) as cm:
                for blob in raw_stream(iter(messages), timeout=RPC_TIMEOUT_S):
                    replies.append(pb.ModelStreamInferResponse.FromString(blob))
                    self.assertLess(len(replies), 10)  # bounded either way
            error = cm.exception
            self.assertGreaterEqual(len(replies), 1)
            self.assertEqual(replies[0].error_message, "")
            self.assertEqual(replies[0].infer_response.id, "good-0")
            # Nothing after the unparseable message was processed.
            self.assertEqual(len(replies), 1, [r.infer_response.id for r in replies])
            self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT,
                             error.details())
            self.assertIn("could not be parsed", error.details())
            self.assertIn("message 2", error.details())
            # The server is fine afterwards.
            reply = server.stub.ModelInfer(forward_request(1, self.K, "after"),
                                           timeout=RPC_TIMEOUT_S)
            self.assertEqual(reply.id, "after")


class ReplyAboveSendLimitTest(unittest.TestCase):
    """(c) At the maximum batch, BF16 x and grad_y asking for all four outputs
    in FP32, with an id of 1 MiB + 4 KiB: the request fits the receive limit,
    the reply would not fit the send limit. INVALID_ARGUMENT naming both sizes, without
    computing; on a stream one error_message and every later message
    answered."""

    K, M, MAX_BATCH = 64, 8, 64
    LONG_ID = "i" * ((1 << 20) + 4096)

    def oversized_request(self, output_datatype="FP32"):
        req = forward_request(self.MAX_BATCH, self.K, request_id=self.LONG_ID,
                              datatype="BF16", grad_m=self.M)
        for name in ("y", "grad_x", "grad_weight", "grad_bias"):
            out = req.outputs.add(name=name)
            out.parameters["datatype"].string_param = output_datatype
        return req

    def server_args(self):
        return ["--in-features", self.K, "--out-features", self.M,
                "--max-batch", self.MAX_BATCH]

    def test_unary_reply_above_send_limit_is_refused_before_compute(self):
        with Server(self.server_args()) as server:
            before = server.statistics()
            with self.assertRaises(grpc.RpcError) as cm:
                server.stub.ModelInfer(self.oversized_request(), timeout=RPC_TIMEOUT_S)
            error = cm.exception
            self.assertEqual(error.code(), grpc.StatusCode.INVALID_ARGUMENT,
                             error.details())
            self.assertIn("send limit", error.details())
            self.assertIn(str(send_limit(self.K, self.M, self.MAX_BATCH)), error.details())
            after = server.statistics()
            self.assertEqual(after.execution_count, before.execution_count,
                             "the layer ran for a reply that could not be sent")
            # The same request with its outputs in BF16 fits, and is served.
            reply = server.stub.ModelInfer(self.oversized_request("BF16"),
                                           timeout=RPC_TIMEOUT_S)
            self.assertEqual(len(reply.id), len(self.LONG_ID))
            self.assertEqual(len(reply.outputs), 4)

    def test_stream_answers_the_oversized_one_and_every_later_message(self):
        with Server(self.server_args()) as server:
            messages = [forward_request(3, self.K, request_id="first")]
            messages.append(self.oversized_request())
            messages += [forward_request(1 + i, self.K, request_id=f"later-{i}", seed=i)
                         for i in range(7)]
            call = server.stub.ModelStreamInfer(iter(messages), timeout=RPC_TIMEOUT_S)
            replies = []
            for reply in call:
                replies.append(reply)
                self.assertLessEqual(len(replies), len(messages))
            self.assertEqual(call.code(), grpc.StatusCode.OK, call.details())
            self.assertEqual(len(replies), len(messages))
            self.assertEqual(replies[0].infer_response.id, "first")
            self.assertTrue(replies[1].error_message.startswith("INVALID_ARGUMENT"),
                            replies[1].error_message)
            self.assertIn("send limit", replies[1].error_message)
            for i, reply in enumerate(replies[2:]):
                self.assertEqual(reply.error_message, "", i)
                self.assertEqual(reply.infer_response.id, f"later-{i}")
                self.assertEqual(list(reply.infer_response.outputs[0].shape),
                                 [1 + i, self.M])


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
