#!/usr/bin/python3
"""Interop test, malformed requests against the real server: one
reluserve-server process serving a repository of three models (a single
nn.Linear, a two-layer MLP, an inference-only model; malformed_cases.py),
and the table of malformed_cases.request_cases() sent to it

- over gRPC ModelInfer (the generated stub, or a generic call carrying the
  raw bytes of a message that does not parse): the row's status code, and a
  message holding every fragment;
- over one ModelStreamInfer stream, every row that is a parseable message of
  a size the server reads: one reply per request, in order, each an
  error_message "<CODE>: ..." with the same fragments, the stream open to
  the valid request after them;
- over REST, its twin as tritonclient.http sends it (or the raw body): the
  row's HTTP status and an {"error"} naming the fragments, the kept-alive
  connection in step after it.

No answer is INTERNAL or 500. After the table the server answers valid
requests with the right numbers, and SIGTERM ends it with exit code 0 and
no sanitizer report in its log.

    /usr/bin/python3 -B malformed_requests_test.py --server PATH --stubs DIR [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import pathlib  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# First: parses the command line and puts the stubs on sys.path.
import http_common as hcom  # noqa: E402

import os  # noqa: E402

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import http_client as hc  # noqa: E402
import malformed_cases as mc  # noqa: E402
import server_process as sp  # noqa: E402
from http_common import RPC_TIMEOUT_S  # noqa: E402

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
STREAM_TIMEOUT_S = 60.0

def grpc_message_rows(rows):
    return [r for r in rows if isinstance(r.grpc, pb.ModelInferRequest)]


class MalformedRequestsTest(hcom.HttpTestCase):
    weights = None

    @classmethod
    def setUpClass(cls):
        def build(tmp):
            root = os.path.join(tmp, "models")
            cls.weights = mc.write_repository(root)
            return ["--model-repository", root, "--max-batch", mc.MAX_BATCH]

        cls.rows = mc.request_cases()
        cls.start_class_server("reluserve-malformed-", build)

    @classmethod
    def tearDownClass(cls):
        server = cls.server
        cls.stop_class_server(expect_code=0)
        if server is not None:
            crash = sp.CRASH_RE.search(server.log())
            if crash:
                raise AssertionError(f"the server's log holds {crash.group(0)!r}:\n"
                                     f"{server.log()}")

    def test_table_counts(self):
        names = [r.name for r in self.rows]
        self.assertEqual(len(names), len(set(names)), "every row has its own name")
        grpc_rows = [r for r in self.rows if r.grpc is not None]
        self.assertGreaterEqual(len(grpc_rows), 40, "at least 40 distinct gRPC requests")
        twins = [r for r in grpc_rows if isinstance(r.rest, mc.Rest)]
        self.assertEqual(len(twins), len(grpc_rows), "every gRPC row has its REST twin")
        for r in self.rows:
            self.assertTrue(r.fragments or r.grpc_fragments or r.rest_fragments, r.name)
            self.assertNotIn(r.code, (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), r.name)
        serialized = [r.grpc if isinstance(r.grpc, bytes) else r.grpc.SerializeToString()
                      for r in grpc_rows]
        self.assertEqual(len(serialized), len(set(serialized)), "distinct gRPC requests")

    def test_every_row_over_grpc(self):
        raw_call = self.channel.unary_unary(MODEL_INFER)
        for row in self.rows:
            if row.grpc is None:
                continue
            with self.subTest(case=row.name):
                call = self.stub.ModelInfer if not isinstance(row.grpc, bytes) else raw_call
                with self.assertRaises(grpc.RpcError) as cm:
                    call(row.grpc, timeout=RPC_TIMEOUT_S)
                err = cm.exception
                self.assertEqual(err.code(), row.code, f"{row.name}: {err.details()!r}")
                for fragment in row.fragments + row.grpc_fragments:
                    self.assertIn(fragment, err.details() or "", row.name)
        self.assertServesOn()

    def test_every_message_row_on_one_stream(self):
        rows = [r for r in grpc_message_rows(self.rows) if r.code != mc.TOO_LARGE]
        x, gy = self.valid_pair()
        valid = mc.grpc_request(mc.SINGLE, [mc.T("x", x), mc.T("grad_y", gy)])
        requests = [r.grpc for r in rows] + [valid]
        for i, req in enumerate(requests):
            req.id = f"row-{i}"
        replies = list(self.stub.ModelStreamInfer(iter(requests), timeout=STREAM_TIMEOUT_S))
        self.assertEqual(len(replies), len(requests), "one reply per request")
        for i, (row, reply) in enumerate(zip(rows, replies)):
            with self.subTest(case=row.name):
                prefix = f"{row.code.name}: "
                self.assertTrue(reply.error_message.startswith(prefix),
                                f"{row.name}: {reply.error_message!r}")
                for fragment in row.fragments + row.grpc_fragments:
                    self.assertIn(fragment, reply.error_message, row.name)
                self.assertEqual(len(reply.infer_response.outputs), 0, row.name)
        last = replies[-1]
        self.assertEqual(last.error_message, "")
        self.assertEqual(last.infer_response.id, f"row-{len(rows)}")
        out = {t.name: np.frombuffer(b, "<f4").reshape(tuple(t.shape))
               for t, b in zip(last.infer_response.outputs,
                               last.infer_response.raw_output_contents)}
        self.check_single(x, gy, out)

    def test_every_row_over_rest(self):
        for row in self.rows:
            self.assertIsInstance(row.rest, mc.Rest, row.name)
            with self.subTest(case=row.name):
                resp = self.http.post(row.rest.path, row.rest.body, row.rest.headers)
                message = self.assertHttpError(resp, row.status,
                                               *(row.fragments + row.rest_fragments))
                self.assertNotIn("internal", message.lower(), row.name)
        self.assertServesOn()

    # -- the server after the table --------------------------------------------
    def valid_pair(self, n=3, seed=0xA11):
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((n, mc.K)).astype(np.float32),
                rng.standard_normal((n, mc.M)).astype(np.float32))

    def check_single(self, x, gy, out):
        w = self.weights[mc.SINGLE]
        self.assertEqual(list(out), ["y", "grad_x", "grad_weight", "grad_bias"])
        want = sp.reference(x, w["weight"], w["bias"], gy, y_server=out["y"])
        for name, expected in zip(out, want):
            np.testing.assert_allclose(out[name], expected, rtol=1e-5, atol=1e-5,
                                       err_msg=name)

    def assertServesOn(self):
        x, gy = self.valid_pair()
        self.assertEqual(self.http.get("/v2/health/live").status, 200)
        self.assertEqual(self.http.get("/v2/health/ready").status, 200)
        grpc_out = self.infer_grpc(mc.grpc_request(mc.SINGLE, [mc.T("x", x), mc.T("grad_y", gy)]))
        self.check_single(x, gy, grpc_out)
        decoded = hc.decode_inference(self.http.infer(
            mc.SINGLE, [hc.Input("x", x), hc.Input("grad_y", gy)]))
        self.assertBitIdentical(decoded.outputs, grpc_out, "REST after the table")
        # The deep model too: y = W2·relu(W0·x + b0) + b2.
        w = self.weights[mc.MLP]
        mx = np.random.default_rng(5).standard_normal((2, mc.MLP_K)).astype(np.float32)
        hidden = np.maximum(mx.astype(np.float64) @ w["0.weight"].T + w["0.bias"], 0.0)
        expected = hidden @ w["2.weight"].T + w["2.bias"]
        got = self.infer_grpc(mc.grpc_request(mc.MLP, [mc.T("x", mx)]))
        np.testing.assert_allclose(got["y"], expected, rtol=1e-5, atol=1e-5)


if __name__ == "__main__":
    hcom.main()
