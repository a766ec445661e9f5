#!/usr/bin/python3
"""Interop test: a plain Python gRPC client (Debian's python3-grpcio, stubs
from Debian's protoc + grpc_python_plugin) against the real reluserve-server
process on 127.0.0.1, checking the Open Inference Protocol contract of
docs/api.md against a float64 numpy reference.

    /usr/bin/python3 -B interop_test.py --server PATH --stubs DIR [unittest args]

DIR holds grpc_service_pb2(_grpc).py, grpc_health_v1_pb2(_grpc).py and
grpc_reflection_v1alpha_pb2(_grpc).py (tests/interop/CMakeLists.txt makes them).
"""

import sys

sys.dont_write_bytecode = True

import concurrent.futures  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402

ARGS, UNITTEST_ARGV = sp.parse_cli(sys.argv, need_client=False)
if ARGS.stubs:
    sys.path.insert(0, os.path.abspath(ARGS.stubs))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import model_config_pb2 as mc_pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
import grpc_health_v1_pb2 as health_pb  # noqa: E402
import grpc_health_v1_pb2_grpc as health_grpc  # noqa: E402
import grpc_reflection_v1alpha_pb2 as refl_pb  # noqa: E402
import grpc_reflection_v1alpha_pb2_grpc as refl_grpc  # noqa: E402

MODEL = "linear_relu"
K = 37  # in_features: deliberately odd, not a multiple of any SIMD width
M = 13  # out_features
PREFIX = "fc."
RPC_TIMEOUT_S = 10.0
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0),
                   ("grpc.max_receive_message_length", 64 << 20)]

RTOL = 1e-5
ATOL = 1e-5  # the data are O(1); fp32 accumulation over K=37 errs by ~1e-6


W, B = sp.make_weights(0x5EED37, K, M)
reference = sp.reference


def random_inputs(n, x_shape_tail=(K,), seed=1):
    """x [n, *tail] and grad_y [n, M] whose pre-activations all keep a clear
    margin from 0 (so fp32 and fp64 agree on the ReLU mask) and which switch
    some units off and some on. Tries a bounded number of seeds."""
    for attempt in range(200):
        rng = np.random.default_rng(seed * 1000 + attempt)
        x = rng.standard_normal((n, *x_shape_tail)).astype(np.float32)
        pre = x.reshape(n, -1).astype(np.float64) @ W.T.astype(np.float64) + B
        if np.min(np.abs(pre)) > 1e-3 and (pre > 0).any() and (pre <= 0).any():
            gy = rng.standard_normal((n, M)).astype(np.float32)
            return x, gy
    raise AssertionError("no well-conditioned random input found")


def raw(a):
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


# -- NaN and Inf: the ReLU backward rule -------------------------------------

def relu_backward_select(y, grad_y):
    """The contract's ReLU backward (docs/api.md): g = grad_y where y > 0,
    else 0. A select, never grad_y * (y > 0): 0 * NaN and 0 * Inf would be
    NaN. NaN > 0 is False, so g is 0 where y is NaN."""
    return np.where(np.asarray(y) > 0, np.asarray(grad_y, np.float64), 0.0)


def relu_backward_pytorch(result, grad):
    """PyTorch's ReLU backward, threshold_backward(grad, result, 0), which
    computes `result <= 0 ? 0 : grad` (aten/src/ATen/native/cpu/Activation.cpp,
    threshold_kernel). Also a select, but on the complement: NaN <= 0 is False
    as well, so PyTorch passes grad through where result is NaN. (torch is not
    needed: this is its rule, written in numpy.)"""
    return np.where(np.asarray(result) <= 0, 0.0, np.asarray(grad, np.float64))


def ieee_matmul(a, b):
    """a @ b in float64 with every product formed, so 0 * NaN and 0 * Inf are
    NaN as in IEEE arithmetic (a BLAS may skip zero operands)."""
    with np.errstate(invalid="ignore"):  # 0 * Inf: NaN, on purpose
        return (np.asarray(a, np.float64)[:, :, None] *
                np.asarray(b, np.float64)[None, :, :]).sum(axis=1)


def select_reference(x, w, b, grad_y, y_mask=None):
    """Float64 forward and backward with the contract's select. `x` [N, ...];
    returns (y, grad_x shaped like x, grad_weight, grad_bias). The mask is
    y_mask (e.g. the server's own y) when given, else the reference's y."""
    x64 = np.asarray(x, np.float64).reshape(x.shape[0], -1)
    pre = ieee_matmul(x64, np.asarray(w, np.float64).T) + np.asarray(b, np.float64)
    y = np.where(np.isnan(pre), pre, np.maximum(pre, 0.0))  # NaN stays NaN
    g = relu_backward_select(y if y_mask is None else y_mask, grad_y)
    grad_x = ieee_matmul(g, w).reshape(x.shape)
    return y, grad_x, ieee_matmul(g.T, x64), g.sum(axis=0)


def to_bf16_bits(a):
    """float32 -> bfloat16 bits, rounding to nearest even; NaN stays a quiet
    NaN, +-Inf stays +-Inf (as the server's own conversion)."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((bits >> 16) | 0x0040).astype(np.uint16), rounded)


def from_bf16_bits(bits):
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


def poisoned(grad_y, where):
    """grad_y with NaN, +Inf, -Inf in turn at the positions of `where`."""
    out = np.array(grad_y, np.float32)
    idx = np.flatnonzero(np.asarray(where).ravel())
    cycle = np.array([np.nan, np.inf, -np.inf], np.float32)
    out.ravel()[idx] = cycle[np.arange(idx.size) % 3]
    return out


def input_tensor(name, array, datatype="FP32"):
    return pb.ModelInferRequest.InferInputTensor(
        name=name, datatype=datatype, shape=list(np.shape(array)))


class InteropTest(unittest.TestCase):
    server = None
    tmp = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="reluserve-interop-")
        weights = os.path.join(cls.tmp.name, "model.safetensors")
        sp.write_linear_weights(weights, W, B, prefix=PREFIX)
        back = sp.read_safetensors(weights)  # self-check of the writer
        np.testing.assert_array_equal(back[PREFIX + "weight"], W)
        np.testing.assert_array_equal(back[PREFIX + "bias"], B)

        cls.server = sp.ServerProcess(
            ARGS.server, [sp.WEIGHTS_FLAG, weights, sp.WEIGHTS_PREFIX_FLAG, PREFIX])
        try:
            cls.server.start()
            cls.channel = grpc.insecure_channel(cls.server.target, options=CHANNEL_OPTIONS)
            grpc.channel_ready_future(cls.channel).result(timeout=RPC_TIMEOUT_S)
        except BaseException:
            cls._shutdown(expect_code=None)
            raise
        cls.stub = pb_grpc.GRPCInferenceServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls._shutdown(expect_code=0)

    @classmethod
    def _shutdown(cls, expect_code):
        channel = getattr(cls, "channel", None)
        if channel is not None:
            channel.close()
            cls.channel = None
        try:
            if cls.server is not None:
                cls.server.stop(expect_code=expect_code)  # asserts exit code 0
        finally:
            cls.server = None
            if cls.tmp is not None:
                cls.tmp.cleanup()
                cls.tmp = None

    # -- helpers ---------------------------------------------------------
    def infer(self, request):
        return self.stub.ModelInfer(request, timeout=RPC_TIMEOUT_S)

    def request(self, x, grad_y=None, outputs=None, typed=False, model=MODEL,
                version="", request_id=""):
        req = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
        tensors = [("x", x)] + ([("grad_y", grad_y)] if grad_y is not None else [])
        for name, array in tensors:
            t = req.inputs.add()
            t.CopyFrom(input_tensor(name, array))
            if typed:
                t.contents.fp32_contents.extend(np.asarray(array, np.float32).ravel().tolist())
            else:
                req.raw_input_contents.append(raw(array))
        for name in outputs or ():
            req.outputs.add(name=name)
        return req

    def decode(self, response):
        """name -> float32 array, checking the response's framing: FP32,
        raw_output_contents one per output, byte counts matching shapes."""
        self.assertEqual(len(response.raw_output_contents), len(response.outputs),
                         "raw_output_contents must hold one entry per output")
        out = {}
        for tensor, blob in zip(response.outputs, response.raw_output_contents):
            self.assertEqual(tensor.datatype, "FP32", tensor.name)
            self.assertEqual(len(tensor.contents.fp32_contents), 0,
                             f"{tensor.name}: data belongs in raw_output_contents")
            shape = tuple(tensor.shape)
            self.assertEqual(len(blob), int(np.prod(shape, dtype=np.int64)) * 4,
                             f"{tensor.name}: byte count vs shape {shape}")
            self.assertNotIn(tensor.name, out, "duplicate output")
            out[tensor.name] = np.frombuffer(blob, dtype="<f4").reshape(shape)
        return out

    def assertClose(self, name, got, ref, rtol=RTOL, atol=ATOL):
        self.assertEqual(tuple(got.shape), tuple(ref.shape), f"{name}: shape")
        got64 = np.asarray(got, np.float64)
        ref_norm = np.linalg.norm(ref)
        err = np.linalg.norm(got64 - ref)
        rel = err / ref_norm if ref_norm > 0 else err
        self.assertLessEqual(rel, rtol, f"{name}: norm-wise relative error {rel:.3g}")
        np.testing.assert_allclose(got64, ref, rtol=rtol, atol=atol, err_msg=name)

    def assertCode(self, code, call, *args, **kwargs):
        kwargs.setdefault("timeout", RPC_TIMEOUT_S)
        with self.assertRaises(grpc.RpcError) as cm:
            call(*args, **kwargs)
        err = cm.exception
        self.assertEqual(err.code(), code,
                         f"expected {code}, got {err.code()}: {err.details()!r}")
        return err

    def check_forward_backward(self, x, gy, out):
        self.assertEqual(list(out), ["y", "grad_x", "grad_weight", "grad_bias"])
        y, gx, gw, gb = reference(x, W, B, gy, y_server=out["y"])
        n = x.shape[0]
        self.assertEqual(out["y"].shape, (n, M))
        self.assertEqual(out["grad_x"].shape, x.shape)
        self.assertEqual(out["grad_weight"].shape, (M, K))
        self.assertEqual(out["grad_bias"].shape, (M,))
        self.assertClose("y", out["y"], y)
        self.assertClose("grad_x", out["grad_x"], gx)
        self.assertClose("grad_weight", out["grad_weight"], gw)
        self.assertClose("grad_bias", out["grad_bias"], gb)

    # -- health, readiness, metadata ---------------------------------------
    def test_server_live(self):
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest(), timeout=RPC_TIMEOUT_S).live)

    def test_server_ready(self):
        self.assertTrue(
            self.stub.ServerReady(pb.ServerReadyRequest(), timeout=RPC_TIMEOUT_S).ready)

    def test_model_ready(self):
        r = self.stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=RPC_TIMEOUT_S)
        self.assertTrue(r.ready)
        r = self.stub.ModelReady(pb.ModelReadyRequest(name=MODEL, version="1"),
                                 timeout=RPC_TIMEOUT_S)
        self.assertTrue(r.ready)

    def test_server_metadata(self):
        r = self.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=RPC_TIMEOUT_S)
        self.assertTrue(r.name, "ServerMetadata.name must not be empty")

    def test_model_metadata(self):
        r = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL), timeout=RPC_TIMEOUT_S)
        self.assertEqual(r.name, MODEL)
        self.assertIn("1", list(r.versions))

        def table(tensors):
            names = [t.name for t in tensors]
            self.assertEqual(len(names), len(set(names)), f"duplicate tensors: {names}")
            return {t.name: (t.datatype, list(t.shape)) for t in tensors}

        self.assertEqual(table(r.inputs), {
            "x": ("FP32", [-1, K]),
            "grad_y": ("FP32", [-1, M]),
        })
        self.assertEqual(table(r.outputs), {
            "y": ("FP32", [-1, M]),
            "grad_x": ("FP32", [-1, K]),
            "grad_weight": ("FP32", [M, K]),
            "grad_bias": ("FP32", [M]),
        })

    def test_model_config_states_the_batch_limit_and_tensors(self):
        r = self.stub.ModelConfig(pb.ModelConfigRequest(name=MODEL), timeout=RPC_TIMEOUT_S)
        config = r.config
        self.assertEqual(config.name, MODEL)
        self.assertEqual(config.max_batch_size, 4096)  # the server's --max-batch
        self.assertEqual([(t.name, list(t.dims), t.optional) for t in config.input],
                         [("x", [K], False), ("grad_y", [M], True)])
        self.assertEqual([t.name for t in config.output],
                         ["y", "grad_x", "grad_weight", "grad_bias"])
        self.assertTrue(all(t.data_type == mc_pb.TYPE_FP32
                            for t in [*config.input, *config.output]))
        self.assertFalse(config.HasField("dynamic_batching"))
        with self.assertRaises(grpc.RpcError) as caught:
            self.stub.ModelConfig(pb.ModelConfigRequest(name="resnet50"),
                                  timeout=RPC_TIMEOUT_S)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertIn("resnet50", caught.exception.details())

    def test_health_check_serving(self):
        stub = health_grpc.HealthStub(self.channel)
        r = stub.Check(health_pb.HealthCheckRequest(service=""), timeout=RPC_TIMEOUT_S)
        self.assertEqual(r.status, health_pb.HealthCheckResponse.SERVING)

    def test_reflection_lists_inference_service(self):
        stub = refl_grpc.ServerReflectionStub(self.channel)
        req = refl_pb.ServerReflectionRequest(host="", list_services="*")
        responses = stub.ServerReflectionInfo(iter([req]), timeout=RPC_TIMEOUT_S)
        names = []
        for resp in responses:  # the request iterator ends: so does the stream
            self.assertEqual(resp.WhichOneof("message_response"), "list_services_response",
                             str(resp))
            names.extend(s.name for s in resp.list_services_response.service)
        self.assertIn("inference.GRPCInferenceService", names)

    # -- inference ---------------------------------------------------------
    def test_forward_raw(self):
        x, _ = random_inputs(5)
        resp = self.infer(self.request(x))
        self.assertEqual(resp.model_name, MODEL)
        out = self.decode(resp)
        self.assertEqual(list(out), ["y"], "no grad_y, no outputs asked: y only")
        self.assertEqual(out["y"].shape, (5, M))
        self.assertClose("y", out["y"], reference(x, W, B)[0])

    def test_forward_batch_of_one(self):
        x, _ = random_inputs(1, seed=2)
        out = self.decode(self.infer(self.request(x)))
        self.assertClose("y", out["y"], reference(x, W, B)[0])

    def test_forward_rank3_input_is_flattened(self):
        x, _ = random_inputs(4, (1, K), seed=3)
        out = self.decode(self.infer(self.request(x)))
        self.assertEqual(out["y"].shape, (4, M))
        self.assertClose("y", out["y"], reference(x, W, B)[0])

    def test_forward_backward_raw(self):
        x, gy = random_inputs(5, seed=4)
        resp = self.infer(self.request(x, gy))
        self.assertEqual(resp.model_name, MODEL)
        self.check_forward_backward(x, gy, self.decode(resp))

    def test_forward_backward_rank3_grad_x_keeps_x_shape(self):
        x, gy = random_inputs(3, (1, K), seed=5)
        out = self.decode(self.infer(self.request(x, gy)))
        self.assertEqual(out["grad_x"].shape, (3, 1, K))
        self.check_forward_backward(x, gy, out)

    def test_typed_fp32_contents(self):
        x, gy = random_inputs(6, seed=6)
        req = self.request(x, gy, typed=True)
        self.assertEqual(len(req.raw_input_contents), 0)
        resp = self.infer(req)
        self.assertEqual(len(resp.raw_output_contents), 4, "responses always use raw contents")
        self.check_forward_backward(x, gy, self.decode(resp))

    def test_typed_fp32_contents_forward(self):
        x, _ = random_inputs(2, seed=7)
        out = self.decode(self.infer(self.request(x, typed=True)))
        self.assertEqual(list(out), ["y"])
        self.assertClose("y", out["y"], reference(x, W, B)[0])

    def test_requested_outputs_subset_and_order(self):
        x, gy = random_inputs(4, seed=8)
        y, gx, gw, gb = reference(x, W, B, gy)
        refs = {"y": y, "grad_x": gx, "grad_weight": gw, "grad_bias": gb}
        for wanted in (["grad_bias", "y"], ["grad_weight"], ["grad_x", "grad_bias", "y"],
                       ["grad_bias", "grad_weight", "grad_x", "y"]):
            with self.subTest(outputs=wanted):
                resp = self.infer(self.request(x, gy, outputs=wanted))
                self.assertEqual([t.name for t in resp.outputs], wanted)
                out = self.decode(resp)
                for name in wanted:
                    self.assertClose(name, out[name], refs[name])

    def test_requested_y_only_without_grad_y(self):
        x, _ = random_inputs(3, seed=9)
        out = self.decode(self.infer(self.request(x, outputs=["y"])))
        self.assertEqual(list(out), ["y"])
        self.assertClose("y", out["y"], reference(x, W, B)[0])

    def test_id_echoed(self):
        x, _ = random_inputs(1, seed=10)
        for rid in ("interop-req-42", "another id / with spaces"):
            with self.subTest(id=rid):
                resp = self.infer(self.request(x, request_id=rid))
                self.assertEqual(resp.id, rid)
                self.assertEqual(resp.model_name, MODEL)

    def test_model_name_and_version_echoed(self):
        x, _ = random_inputs(1, seed=11)
        resp = self.infer(self.request(x, version="1"))
        self.assertEqual(resp.model_name, MODEL)
        self.assertEqual(resp.model_version, "1")

    def test_concurrent_calls(self):
        # Several calls in flight at once on one channel: each gets its own
        # right answer (oneDNN scratchpad sharing would break this).
        cases = [random_inputs(1 + i % 4, seed=100 + i) for i in range(16)]
        futures = [self.stub.ModelInfer.future(self.request(x, gy, request_id=str(i)),
                                               timeout=RPC_TIMEOUT_S)
                   for i, (x, gy) in enumerate(cases)]
        for i, ((x, gy), fut) in enumerate(zip(cases, futures)):
            resp = fut.result(timeout=RPC_TIMEOUT_S)
            self.assertEqual(resp.id, str(i))
            self.check_forward_backward(x, gy, self.decode(resp))

    def test_parallel_channels(self):
        # Separate connections at once: the server must answer them all.
        def one(i):
            x, gy = random_inputs(2, seed=200 + i)
            with grpc.insecure_channel(self.server.target, options=CHANNEL_OPTIONS) as ch:
                resp = pb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(
                    self.request(x, gy), timeout=RPC_TIMEOUT_S)
            return x, gy, resp

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(one, range(8), timeout=3 * RPC_TIMEOUT_S))
        for x, gy, resp in results:
            self.check_forward_backward(x, gy, self.decode(resp))

    # -- NaN and Inf: the backward pass is a select -------------------------
    def nonfinite_request(self, x, gy, datatype):
        """x and grad_y (float32 arrays, NaN/Inf allowed) as raw FP32 or BF16,
        with every output asked for in FP32."""
        req = pb.ModelInferRequest(model_name=MODEL)
        for name, array in (("x", x), ("grad_y", gy)):
            req.inputs.add().CopyFrom(input_tensor(name, array, datatype=datatype))
            req.raw_input_contents.append(
                raw(array) if datatype == "FP32"
                else np.ascontiguousarray(to_bf16_bits(array), "<u2").tobytes())
        for name in ("y", "grad_x", "grad_weight", "grad_bias"):
            out = req.outputs.add(name=name)
            out.parameters["datatype"].string_param = "FP32"
        return req

    def as_sent(self, a, datatype):
        """What the server computes from: `a` as the wire datatype holds it."""
        a = np.asarray(a, np.float32)
        return a if datatype == "FP32" else from_bf16_bits(to_bf16_bits(a))

    def assertSameNanAndClose(self, name, got, ref):
        """NaN exactly where the reference has NaN; close elsewhere."""
        got = np.asarray(got, np.float64)
        self.assertEqual(got.shape, ref.shape, f"{name}: shape")
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref),
                                      err_msg=f"{name}: NaN pattern")
        finite = ~np.isnan(ref)
        np.testing.assert_allclose(got[finite], ref[finite], rtol=RTOL, atol=ATOL,
                                   err_msg=name)

    def test_nan_and_inf_grad_y_where_y_is_zero_never_leak(self):
        # The repro of the FP32 bug: oneDNN's eltwise backward multiplied,
        # 0 * Inf = NaN, and whole rows of grad_x came back NaN.
        x, gy = random_inputs(6, seed=300)
        for datatype in ("FP32", "BF16"):
            with self.subTest(datatype=datatype):
                xs, ws = self.as_sent(x, datatype), self.as_sent(W, datatype)
                pre = xs.astype(np.float64) @ ws.T.astype(np.float64) + B
                dead = pre < -1e-3  # y is surely 0 there, in either precision
                self.assertGreater(dead.sum(), 5)
                gy_bad = poisoned(gy, dead)
                out = self.decode(self.infer(self.nonfinite_request(x, gy_bad, datatype)))
                for name in ("y", "grad_x", "grad_weight", "grad_bias"):
                    self.assertTrue(np.isfinite(out[name]).all(),
                                    f"{name}: {np.size(out[name]) - np.isfinite(out[name]).sum()}"
                                    " non-finite values")
                self.assertTrue((out["y"][dead] == 0).all())
                gys = self.as_sent(gy_bad, datatype)
                y, gx, gw, gb = select_reference(xs, ws, B, gys, y_mask=out["y"])
                self.assertClose("y", out["y"], y)
                self.assertClose("grad_x", out["grad_x"], gx)
                self.assertClose("grad_weight", out["grad_weight"], gw)
                self.assertClose("grad_bias", out["grad_bias"], gb)
                # Without a NaN in y, PyTorch's rule gives the same g.
                np.testing.assert_array_equal(relu_backward_select(out["y"], gys),
                                              relu_backward_pytorch(out["y"], gys))
                # A multiply would not: 0 * NaN and 0 * Inf are NaN.
                with np.errstate(invalid="ignore"):
                    multiplied = gys.astype(np.float64) * (out["y"] > 0)
                self.assertTrue(np.isnan(multiplied).any())

    def test_nan_output_gets_zero_gradient(self):
        # A NaN in row 1 of x makes that row of y NaN; 1[y > 0] is 0 there, so
        # g's row is 0 whatever grad_y says, even Inf.
        x, gy = random_inputs(4, seed=301)
        x[1, 3] = np.nan
        gy = gy.copy()
        gy[1, 2] = np.inf
        for datatype in ("FP32", "BF16"):
            with self.subTest(datatype=datatype):
                out = self.decode(self.infer(self.nonfinite_request(x, gy, datatype)))
                self.assertTrue(np.isnan(out["y"][1]).all(), out["y"][1])
                self.assertTrue(np.isfinite(np.delete(out["y"], 1, axis=0)).all())
                np.testing.assert_array_equal(out["grad_x"][1], np.zeros(K, np.float32))
                self.assertTrue(np.isfinite(out["grad_bias"]).all(), out["grad_bias"])
                xs, ws = self.as_sent(x, datatype), self.as_sent(W, datatype)
                gys = self.as_sent(gy, datatype)
                y, gx, gw, gb = select_reference(xs, ws, B, gys, y_mask=out["y"])
                self.assertSameNanAndClose("y", out["y"], y)
                self.assertSameNanAndClose("grad_x", out["grad_x"], gx)
                self.assertSameNanAndClose("grad_bias", out["grad_bias"], gb)
                # grad_weight = g^T x is an IEEE product: x's column 3 holds the
                # NaN, and 0 * NaN = NaN, so that column is NaN; the rest is not.
                self.assertTrue(np.isnan(out["grad_weight"][:, 3]).all())
                self.assertSameNanAndClose("grad_weight", out["grad_weight"], gw)
                # The one place PyTorch differs: threshold_backward passes grad
                # through where the result is NaN; the contract gives 0.
                ours = relu_backward_select(out["y"], gys)
                torch_rule = relu_backward_pytorch(out["y"], gys)
                np.testing.assert_array_equal(ours[1], np.zeros(M))
                np.testing.assert_array_equal(torch_rule[1], gys[1].astype(np.float64))
                same = ~np.isnan(out["y"])
                np.testing.assert_array_equal(ours[same], torch_rule[same])

    def test_nan_grad_y_where_y_is_positive_passes_through(self):
        # The select keeps grad_y where y > 0, NaN included: then IEEE
        # arithmetic spreads it (row n of grad_x, row m of grad_weight,
        # grad_bias[m]) and nowhere else.
        x, gy = random_inputs(3, seed=302)
        pre = x.astype(np.float64) @ W.T.astype(np.float64) + B
        n, m = np.argwhere(pre > 1e-3)[0]
        gy = gy.copy()
        gy[n, m] = np.nan
        out = self.decode(self.infer(self.nonfinite_request(x, gy, "FP32")))
        y, gx, gw, gb = select_reference(x, W, B, gy, y_mask=out["y"])
        self.assertTrue(np.isnan(out["grad_bias"][m]))
        self.assertTrue(np.isnan(out["grad_x"][n]).all())
        self.assertTrue(np.isnan(out["grad_weight"][m]).all())
        self.assertSameNanAndClose("grad_x", out["grad_x"], gx)
        self.assertSameNanAndClose("grad_weight", out["grad_weight"], gw)
        self.assertSameNanAndClose("grad_bias", out["grad_bias"], gb)

    # -- errors ------------------------------------------------------------
    def test_unknown_model_is_not_found(self):
        x, _ = random_inputs(1, seed=12)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.ModelInfer,
                        self.request(x, model="no_such_model"))
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.ModelMetadata,
                        pb.ModelMetadataRequest(name="no_such_model"))

    def test_unknown_version_is_not_found(self):
        x, _ = random_inputs(1, seed=13)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.ModelInfer,
                        self.request(x, version="7"))

    def test_wrong_datatype_is_invalid_argument(self):
        x = np.zeros((2, K), np.float64)
        req = pb.ModelInferRequest(model_name=MODEL)
        req.inputs.add().CopyFrom(input_tensor("x", x, datatype="FP64"))
        req.raw_input_contents.append(x.astype("<f8").tobytes())
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer, req)

    def test_gradient_without_grad_y_is_invalid_argument(self):
        x, _ = random_inputs(2, seed=14)
        for wanted in (["grad_x"], ["y", "grad_weight"], ["grad_bias"]):
            with self.subTest(outputs=wanted):
                self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer,
                                self.request(x, outputs=wanted))

    def test_missing_x_is_invalid_argument(self):
        _, gy = random_inputs(2, seed=15)
        req = pb.ModelInferRequest(model_name=MODEL)
        req.inputs.add().CopyFrom(input_tensor("grad_y", gy))
        req.raw_input_contents.append(raw(gy))
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer, req)

    def test_wrong_inner_size_is_invalid_argument(self):
        x = np.ones((2, K + 1), np.float32)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer,
                        self.request(x))

    def test_byte_count_mismatch_is_invalid_argument(self):
        x, _ = random_inputs(2, seed=16)
        req = self.request(x)
        req.raw_input_contents[0] = raw(x)[:-4]
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer, req)

    def test_unknown_output_is_invalid_argument(self):
        x, _ = random_inputs(2, seed=17)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer,
                        self.request(x, outputs=["z"]))

    def test_raw_and_typed_mixed_is_invalid_argument(self):
        x, gy = random_inputs(2, seed=18)
        req = self.request(x, gy)  # both raw
        del req.raw_input_contents[1]
        req.inputs[1].contents.fp32_contents.extend(gy.ravel().tolist())
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer, req)

    def test_server_still_healthy_after_errors(self):
        self.test_wrong_datatype_is_invalid_argument()
        self.test_forward_backward_raw()


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
