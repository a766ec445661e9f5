"""What the python_* interop tests share: a plain Python gRPC client (Debian's
python3-grpcio, stubs from Debian's protoc + grpc_python_plugin) against the
real reluserve-server process on 127.0.0.1, serving known weights, checked
against a float64 numpy reference. Importing this module parses the command
line and puts the stubs on sys.path; InteropTestCase starts one server for
its test class.

The tests, one file a job (tests/interop/CMakeLists.txt registers each):
    interop_discovery_test.py   health, readiness, metadata, config, reflection
    interop_inference_test.py   inference and the errors the contract names
    interop_nonfinite_test.py   NaN and Inf: the ReLU backward rule

    /usr/bin/python3 -B interop_<job>_test.py --server PATH --stubs DIR [unittest args]

DIR holds grpc_service_pb2(_grpc).py, grpc_health_v1_pb2(_grpc).py and
grpc_reflection_v1alpha_pb2(_grpc).py (tests/interop/CMakeLists.txt makes them).
"""

import sys

sys.dont_write_bytecode = True

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
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402

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


def input_tensor(name, array, datatype="FP32"):
    return pb.ModelInferRequest.InferInputTensor(
        name=name, datatype=datatype, shape=list(np.shape(array)))


class InteropTestCase(unittest.TestCase):
    """Runs one reluserve-server serving W and B for the test class; `stub`
    and `channel` reach it. The helpers build requests and check answers."""

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
        sp.stop_class_fixture(cls, expect_code)

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


def main():
    unittest.main(argv=UNITTEST_ARGV)
