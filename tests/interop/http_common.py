"""What the HTTP interop tests share (interop_http_test.py,
interop_http_endpoints_test.py, interop_http_models_test.py): a real
reluserve-server on 127.0.0.1 with its gRPC port and its HTTP/REST port
(`--http-port`, a free port), reached over HTTP by http_client.Client
(tritonclient.http's wire format on the stdlib) and over gRPC by the
generated stubs (Debian's python3-grpcio) for the side-by-side checks; the
reference is torch autograd in float64 (torch_models.py). Importing this
module parses the command line and puts the stubs on sys.path.

    /usr/bin/python3 -B interop_http_<job>_test.py --server PATH --stubs DIR [unittest args]

Needs Debian's python3-torch: without it the tests FAIL, saying to run
scripts/install-deps.sh.
"""

import sys

sys.dont_write_bytecode = True

import http.client  # noqa: E402
import pathlib  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402

# Importing it parses the command line (--server, --stubs) and puts the stubs
# on sys.path; OipTestCase brings assertMatches and assertAllMatch.
from deep_models_test import (ARGS, BF16_RTOL, FP32_MARGIN, FP32_RTOL,  # noqa: E402,F401
                              PLATFORM, UNITTEST_ARGV, OipTestCase, make_request)

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
import http_client as hc  # noqa: E402
import torch_models as tm  # noqa: E402

if tm.torch is not None:
    tm.torch.set_num_threads(1)  # 2 cores: leave them to the server

DEFAULT_MODEL = "linear_relu"
RPC_TIMEOUT_S = 10.0
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0),
                   ("grpc.max_receive_message_length", 256 << 20)]
# BF16 on a 3072-input layer: bf16 rounding of x and W moves a pre-activation
# by ~1e-5 of its scale; deep_models_test's BF16_MARGIN (2e-2) would leave
# hardly a row of 100 units.
BF16_MARGIN = 1e-3
START_ATTEMPTS = 3  # a free_port() taken by another process before the server binds it
MODES = ("binary", "json")


def conditioned_inputs(served, n, x_tail=None, seed=1, margin=FP32_MARGIN,
                       round_bf16=False, rounds=60):
    """x [n, *x_tail] and grad_y [n, out_features], float32 N(0, 1), such that
    no ReLU's pre-activation is within `margin` of 0 relative to its scale
    (torch_models.ServedModel.relu_margins), so that rounding cannot flip a
    ReLU and autograd's mask is the server's. Unlike ServedModel.inputs it
    keeps good rows rather than whole batches, so N = 100 rows of 100 units
    of a 3072-input layer can be found. Some unit is on and some is off.
    Bounded: `rounds` batches of candidates."""
    tail = tuple(x_tail) if x_tail is not None else (served.in_features,)
    rows = []
    for round_ in range(rounds):
        rng = np.random.default_rng([seed, round_])
        cand = rng.standard_normal((max(2 * n, 16), *tail)).astype(np.float32)
        if round_bf16:
            cand = tm.bf16_round(cand)
        good = np.ones(len(cand), bool)
        for ratio, _on in served.relu_margins(cand):
            good &= ratio.reshape(len(cand), -1).min(axis=1) >= margin
        rows.extend(cand[good])
        if len(rows) >= n:
            break
    else:
        raise AssertionError(f"only {len(rows)} of {n} rows with ReLU margins >= {margin}")
    x = np.stack(rows[:n])
    gy = np.random.default_rng([seed, 1 << 20]).standard_normal(
        (n, served.out_features)).astype(np.float32)
    if round_bf16:
        gy = tm.bf16_round(gy)
    ons = [on for _, on in served.relu_margins(x)]
    if ons and not (any(on.any() for on in ons) and any((~on).any() for on in ons)):
        raise AssertionError("inputs leave every ReLU on or every ReLU off")
    return x, gy


def http_inputs(mode, x, gy=None, datatype="FP32", nested=False):
    """x (and grad_y) as http_client.Inputs: binary in mode "binary", JSON
    data in mode "json"."""
    binary = mode == "binary"
    inputs = [hc.Input("x", x, datatype, binary=binary, nested=nested)]
    if gy is not None:
        inputs.append(hc.Input("grad_y", gy, datatype, binary=binary, nested=nested))
    return inputs


def http_outputs(mode, names, datatype=None):
    return [hc.Output(name, binary=mode == "binary", datatype=datatype) for name in names]


def grpc_request(model, x, gy=None, outputs=None, version="", datatype="FP32",
                 out_datatype=None):
    """The same request as raw gRPC ModelInfer (deep_models_test.make_request),
    each named output with the parameter datatype `out_datatype` if given."""
    req = make_request(model, x, gy, outputs, version=version, datatype=datatype)
    if out_datatype is not None:
        for out in req.outputs:
            out.parameters["datatype"].string_param = out_datatype
    return req


def bits(a):
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


class HttpTestCase(OipTestCase):
    """One server for the test class, with gRPC and HTTP/REST on: `http`
    (an http_client.Client), `http_port`, `channel` and `stub` (gRPC)."""

    server = None
    tmp = None
    channel = None
    stub = None
    http = None
    http_port = None

    @classmethod
    def start_class_server(cls, tmp_prefix, build):
        """cls.tmp, then the server started with build(cls.tmp.name) plus
        --http-port <free port>, cls.http, cls.channel (ready) and cls.stub.
        A failure on the way stops what did start and re-raises."""
        tm.require_torch()
        cls.tmp = tempfile.TemporaryDirectory(prefix=tmp_prefix)
        try:
            args = [str(a) for a in build(cls.tmp.name)]
            for attempt in range(START_ATTEMPTS):
                port = sp.free_port()
                cls.server = sp.ServerProcess(ARGS.server, [*args, "--http-port", port])
                try:
                    cls.server.start()
                    break
                except sp.ServerError:
                    log = cls.server.log().lower()
                    if attempt + 1 == START_ATTEMPTS or "in use" not in log:
                        raise
            cls.http_port = hc.wait_http(cls.server)
            if cls.http_port != port:
                raise AssertionError(f"asked for HTTP port {port}, the log says "
                                     f"{cls.http_port}")
            cls.http = hc.Client(cls.http_port)
            cls.channel = grpc.insecure_channel(cls.server.target, options=CHANNEL_OPTIONS)
            grpc.channel_ready_future(cls.channel).result(timeout=RPC_TIMEOUT_S)
            cls.stub = pb_grpc.GRPCInferenceServiceStub(cls.channel)
        except BaseException:
            cls.stop_class_server(expect_code=None)
            raise

    @classmethod
    def stop_class_server(cls, expect_code=0):
        if cls.http is not None:
            cls.http.close()
            cls.http = None
        sp.stop_class_fixture(cls, expect_code)

    @classmethod
    def tearDownClass(cls):
        cls.stop_class_server(expect_code=0)

    # -- HTTP ----------------------------------------------------------------
    def get_json(self, path, status=200):
        """GET `path`, asserting `status` and a JSON body; returns it."""
        resp = self.http.get(path)
        self.assertEqual(resp.status, status, f"GET {path}: {resp!r}")
        self.assertTrue((resp.header("Content-Type") or "").startswith("application/json"),
                        f"GET {path}: Content-Type {resp.header('Content-Type')!r}")
        return resp.json()

    def infer_http(self, model, inputs, outputs=None, version="", mode="binary",
                   expect_binary=None, **kwargs):
        """POST infer and decode; checks the framing (http_client.decode_inference),
        model_name and model_version, and which outputs came binary:
        `expect_binary` True (all), False (none), None (all in mode
        "binary", none in mode "json")."""
        resp = self.http.infer(model, inputs, outputs, version=version, **kwargs)
        self.assertEqual(resp.status, 200, f"infer {model}: {resp!r}")
        decoded = hc.decode_inference(resp)
        self.assertEqual(decoded.header.get("model_name"), model)
        if version:
            self.assertEqual(decoded.header.get("model_version"), version)
        else:
            self.assertTrue(decoded.header.get("model_version"), decoded.header)
        if expect_binary is None:
            expect_binary = mode == "binary"
        names = list(decoded.outputs)
        self.assertEqual(decoded.binary, names if expect_binary else [],
                         f"outputs in the binary section (mode {mode})")
        if not decoded.binary:
            self.assertIsNone(resp.header(hc.HEADER_LENGTH),
                              f"no binary output, yet {hc.HEADER_LENGTH}")
            self.assertTrue((resp.header("Content-Type") or "").startswith("application/json"),
                            f"Content-Type {resp.header('Content-Type')!r}")
        return decoded

    def assertHttpError(self, resp, status, *fragments, in_sync=True):
        """`resp` has `status` and an {"error": "..."} body naming every
        fragment. `in_sync`: then the next request on `http` (the connection
        of most refusals) gets its own answer, not one for left-over bytes of
        a body the server did not read."""
        self.assertEqual(resp.status, status, repr(resp))
        try:
            body = resp.json()
        except ValueError as e:
            self.fail(f"error body is no JSON ({e}): {resp!r}")
        self.assertIsInstance(body, dict, repr(resp))
        self.assertIsInstance(body.get("error"), str, f"no error string: {body}")
        self.assertTrue(body["error"], "empty error message")
        for fragment in fragments:
            self.assertIn(fragment, body["error"])
        if in_sync and (resp.header("Connection") or "").lower() != "close":
            # Kept alive: the connection must be in step, on the same socket.
            try:
                after = self.http.get("/v2/health/live", retry=False)
            except (OSError, http.client.HTTPException) as e:
                self.fail(f"the request after a refusal ({resp!r}) failed on the kept-alive "
                          f"connection: {e!r}")
            self.assertEqual(after.status, 200, f"the request after a refusal ({resp!r}) was "
                             f"answered {after!r}: the connection is out of step")
        return body["error"]

    # -- gRPC ----------------------------------------------------------------
    def infer_grpc(self, request, datatype="FP32"):
        """name -> float32 array of a gRPC ModelInfer, in response order."""
        resp = self.stub.ModelInfer(request, timeout=RPC_TIMEOUT_S)
        self.assertEqual(len(resp.raw_output_contents), len(resp.outputs))
        out = {}
        for tensor, blob in zip(resp.outputs, resp.raw_output_contents):
            out[tensor.name] = tm.from_raw(blob, tensor.datatype, tuple(tensor.shape))
        return out

    # -- numbers -------------------------------------------------------------
    def assertBitIdentical(self, http_out, grpc_out, what="", nan_payload=True):
        """Same names in the same order, same shapes, the same float32 bits
        (the sign of zero included; NaN payloads too unless `nan_payload` is
        False: JSON's NaN token has none)."""
        self.assertEqual(list(http_out), list(grpc_out), f"{what}: output names and order")
        for name in grpc_out:
            a = np.ascontiguousarray(http_out[name], np.float32)
            b = np.ascontiguousarray(grpc_out[name], np.float32)
            self.assertEqual(a.shape, b.shape, f"{what} {name}: shape")
            differ = bits(a) != bits(b)
            if not nan_payload:
                differ &= ~(np.isnan(a) & np.isnan(b))
            count = int(np.count_nonzero(differ))
            self.assertEqual(count, 0, f"{what} {name}: {count} of {a.size} values differ "
                             f"in their bits from gRPC's (first: http {a[differ][:3]}, "
                             f"grpc {b[differ][:3]})")

def main():
    unittest.main(argv=UNITTEST_ARGV)
