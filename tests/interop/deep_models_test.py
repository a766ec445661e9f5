#!/usr/bin/python3
"""Interop test, deep models: reluserve-server serving PyTorch state dicts —
one nn.Linear or an nn.Sequential of Linear and ReLU layers — from
`--weights FILE [--weights-prefix P] [--layers LIST] [--model-name NAME]`
(repositories: repository_models_test.py, which uses this module), checked
against torch autograd (float64) over a real gRPC channel to 127.0.0.1 with
the generated stubs:

- depths 1, 2, 3 and 5; a final ReLU or none (--layers); two Linears in a
  row; bias=False layers, alone and mixed; a prefix that selects a submodule
  of a larger state dict; `x` sent as [N, 3, 32, 32] to a 3072-input model;
- y and every gradient (grad_x, grad_<P> for every parameter P) within
  max|diff| <= 1e-5 x max|expected| for FP32, 2e-2 for BF16 inputs;
- the default output order, explicit outputs in a custom order, metadata
  and ModelConfig of every tensor;
- (the reluserve-client and reluserve-load binaries on a 3-layer MLP:
  deep_models_cli_test.py, which uses this module).

    /usr/bin/python3 -B deep_models_test.py --server PATH --stubs DIR \
        [unittest args]

Needs Debian's python3-torch: without it every test FAILS, saying to run
scripts/install-deps.sh.
"""

import sys

sys.dont_write_bytecode = True

import collections  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402

ARGS, LOAD, UNITTEST_ARGV = sp.parse_load_cli(sys.argv)
if ARGS.stubs:
    sys.path.insert(0, os.path.abspath(ARGS.stubs))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
import model_config_pb2 as mc_pb  # noqa: E402
import torch_models as tm  # noqa: E402

if tm.torch is not None:
    tm.torch.set_num_threads(1)  # 2 cores: leave them to the server

RPC_TIMEOUT_S = 10.0
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0),
                   ("grpc.max_receive_message_length", 64 << 20)]
PLATFORM = "onednn_linear_relu"
DEFAULT_MODEL = "linear_relu"
FP32_RTOL = 1e-5   # max|diff| / max|expected|, per tensor
BF16_RTOL = 2e-2
# No ReLU pre-activation closer to 0 than this, relative to its scale
# |h|·|W|ᵀ + |b|: fp32 (bf16) rounding cannot flip the server's mask.
FP32_MARGIN = 2e-5
BF16_MARGIN = 2e-2
REFUSAL_TIMEOUT_S = 20.0
CLIENT_TIMEOUT_S = 60.0
REPOSITORY_FLAG = "--model-repository"
LAYERS_FLAG = "--layers"


# -- shared helpers ----------------------------------------------------------

def make_request(model, x, grad_y=None, outputs=None, version="", datatype="FP32",
                 request_id=""):
    req = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    for name, array in (("x", x), ("grad_y", grad_y)):
        if array is None:
            continue
        req.inputs.add(name=name, datatype=datatype, shape=list(np.shape(array)))
        req.raw_input_contents.append(tm.raw_bytes(array, datatype))
    for name in outputs or ():
        req.outputs.add(name=name)
    return req


def stats_by_key(response):
    out = {}
    for s in response.model_stats:
        key = (s.name, s.version)
        if key in out:
            raise AssertionError(f"ModelStatistics lists {key} twice")
        out[key] = s
    return out


def run_refused(args):
    """Runs the server expecting it to refuse to start; returns the
    CompletedProcess (stdout and stderr apart). A server that starts instead
    is killed after REFUSAL_TIMEOUT_S."""
    argv = [ARGS.server, "--host", sp.LOOPBACK, "--port", "0", "--metrics-port", "0",
            "--http-port", "0",
            *[str(a) for a in args]]
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=REFUSAL_TIMEOUT_S, env=sp.loopback_env())
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"the server did not exit within {REFUSAL_TIMEOUT_S:.0f} s "
                             f"(it should refuse to start)\ncommand: {argv}\n"
                             f"--- stdout ---\n{e.stdout}\n--- stderr ---\n{e.stderr}")


class TorchInstalledTest(unittest.TestCase):
    def test_torch_is_installed(self):
        if tm.TORCH_IMPORT_ERROR is not None:
            self.fail(tm.INSTALL_HINT.format(python=sys.executable,
                                             error=tm.TORCH_IMPORT_ERROR))
        self.assertTrue(hasattr(tm.torch, "autograd"))

    def test_helpers_self_test(self):
        # The safetensors writer against two readers, the autograd
        # reference against hand-written numpy (torch_models.self_test).
        tm.require_torch()
        with tempfile.TemporaryDirectory(prefix="reluserve-deep-selftest-") as tmp:
            self.assertTrue(tm.self_test(tmp))


class OipTestCase(unittest.TestCase):
    """The class fixture (one server for the class, started by
    start_class_server) and the assertions and decoding shared by the
    server-backed tests."""

    server = None
    tmp = None
    channel = None
    stub = None

    @classmethod
    def start_class_server(cls, tmp_prefix, build):
        """cls.tmp (a temporary directory), then the server started with the
        arguments build(its path) returns, cls.channel (ready) and cls.stub.
        A failure on the way stops what did start and re-raises."""
        tm.require_torch()
        cls.tmp = tempfile.TemporaryDirectory(prefix=tmp_prefix)
        try:
            cls.server = sp.ServerProcess(ARGS.server, build(cls.tmp.name))
            cls.server.start()
            cls.channel = grpc.insecure_channel(cls.server.target, options=CHANNEL_OPTIONS)
            grpc.channel_ready_future(cls.channel).result(timeout=RPC_TIMEOUT_S)
            cls.stub = pb_grpc.GRPCInferenceServiceStub(cls.channel)
        except BaseException:
            sp.stop_class_fixture(cls, expect_code=None)
            raise

    @classmethod
    def tearDownClass(cls):
        sp.stop_class_fixture(cls, expect_code=0)

    def infer(self, request):
        return self.stub.ModelInfer(request, timeout=RPC_TIMEOUT_S)

    def decode(self, response, datatype="FP32"):
        """name -> float32 array, in response order, checking the framing:
        one raw_output_contents entry per output, no typed contents, byte
        counts matching shape and datatype."""
        self.assertEqual(len(response.raw_output_contents), len(response.outputs),
                         "raw_output_contents must hold one entry per output")
        out = collections.OrderedDict()
        for tensor, blob in zip(response.outputs, response.raw_output_contents):
            self.assertEqual(tensor.datatype, datatype, tensor.name)
            self.assertEqual(len(tensor.contents.fp32_contents), 0,
                             f"{tensor.name}: data belongs in raw_output_contents")
            shape = tuple(tensor.shape)
            self.assertEqual(len(blob),
                             int(np.prod(shape, dtype=np.int64)) * tm.element_size(datatype),
                             f"{tensor.name}: byte count vs shape {shape}")
            self.assertNotIn(tensor.name, out, "duplicate output")
            out[tensor.name] = tm.from_raw(blob, datatype, shape)
        return out

    def assertMatches(self, name, got, expected, rtol=FP32_RTOL):
        """max|got - expected| <= rtol x max|expected|, shapes equal."""
        self.assertEqual(tuple(np.shape(got)), tuple(np.shape(expected)), f"{name}: shape")
        self.assertTrue(np.all(np.isfinite(got)), f"{name}: non-finite values")
        err = tm.max_relative_error(got, expected)
        self.assertLessEqual(
            err, rtol, f"{name}: max|diff| = {err:.3g} x max|expected| "
            f"(max|expected| = {np.max(np.abs(expected)):.4g}), allowed {rtol:g}")

    def assertAllMatch(self, out, ref, names=None, rtol=FP32_RTOL):
        for name in names if names is not None else ref:
            self.assertIn(name, out, f"output {name} missing; got {list(out)}")
            self.assertMatches(name, out[name], ref[name], rtol)

    def assertCode(self, code, call, request, *fragments):
        with self.assertRaises(grpc.RpcError) as cm:
            call(request, timeout=RPC_TIMEOUT_S)
        err = cm.exception
        self.assertEqual(err.code(), code,
                         f"expected {code}, got {err.code()}: {err.details()!r}")
        self.assertTrue(err.details(), "the error must carry a message")
        for fragment in fragments:
            self.assertIn(fragment, err.details())
        return err

    def check_metadata(self, model, served, backward=True, versions=("1",)):
        md = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=model),
                                     timeout=RPC_TIMEOUT_S)
        self.assertEqual(md.name, model)
        self.assertEqual(sorted(md.versions, key=int), list(versions))
        self.assertEqual(md.platform, PLATFORM)

        def table(tensors):
            names = [t.name for t in tensors]
            self.assertEqual(len(names), len(set(names)), f"duplicate tensors: {names}")
            return {t.name: (t.datatype, list(t.shape)) for t in tensors}

        self.assertEqual(table(md.inputs),
                         {n: ("FP32", s) for n, s in served.input_specs(backward)})
        self.assertEqual(table(md.outputs),
                         {n: ("FP32", s) for n, s in served.output_specs(backward)})
        return md

    def check_config(self, model, served, backward=True, max_batch_size=None):
        md = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=model),
                                     timeout=RPC_TIMEOUT_S)
        config = self.stub.ModelConfig(pb.ModelConfigRequest(name=model),
                                       timeout=RPC_TIMEOUT_S).config
        self.assertEqual(config.name, model)
        self.assertEqual(config.platform, PLATFORM)
        self.assertGreater(config.max_batch_size, 0)
        if max_batch_size is not None:
            self.assertEqual(config.max_batch_size, max_batch_size)

        def without_batch(shape):
            shape = list(shape)
            return shape[1:] if shape and shape[0] == -1 else shape

        self.assertEqual([(t.name, t.data_type, list(t.dims), t.optional)
                          for t in config.input],
                         [(t.name, mc_pb.TYPE_FP32, without_batch(t.shape), t.name == "grad_y")
                          for t in md.inputs])
        self.assertEqual([(t.name, t.data_type, list(t.dims)) for t in config.output],
                         [(t.name, mc_pb.TYPE_FP32, without_batch(t.shape))
                          for t in md.outputs])
        self.assertEqual({t.name for t in config.input},
                         {n for n, _ in served.input_specs(backward)})
        self.assertEqual({t.name for t in config.output},
                         {n for n, _ in served.output_specs(backward)})
        return config


# -- one model from --weights ------------------------------------------------

class ServedCase:
    """Mixin: one server for the class, serving what build() writes. The
    tests below run for every case."""

    MODEL = DEFAULT_MODEL
    N = 3
    X_TAIL = None  # x's trailing dims; None: [in_features]
    SEED = 1

    @classmethod
    def build(cls, tmp):
        """(tm.ServedModel, extra server args)."""
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        def build(tmp):
            cls.served, args = cls.build(tmp)
            return args
        cls.start_class_server("reluserve-deep-", build)

    def inputs(self, seed=0, n=None, x_tail=None):
        return self.served.inputs(n or self.N, x_tail or self.X_TAIL,
                                  seed=self.SEED * 1000 + seed, margin=FP32_MARGIN)

    def test_metadata_lists_every_parameter_gradient(self):
        md = self.check_metadata(self.MODEL, self.served)
        grads = [t.name for t in md.outputs if t.name.startswith("grad_") and
                 t.name != "grad_x"]
        self.assertEqual(sorted(grads), sorted("grad_" + p for p in self.served.param_names))
        for t in md.outputs:
            if t.name in grads:
                self.assertNotIn(-1, list(t.shape), f"{t.name}: a parameter has a fixed shape")

    def test_model_config_matches_metadata(self):
        self.check_config(self.MODEL, self.served)

    def test_forward_matches_torch(self):
        x, _ = self.inputs(seed=1)
        resp = self.infer(make_request(self.MODEL, x))
        self.assertEqual(resp.model_name, self.MODEL)
        self.assertEqual(resp.model_version, "1")
        out = self.decode(resp)
        self.assertEqual(list(out), ["y"], "no grad_y, no outputs asked: y only")
        self.assertEqual(out["y"].shape, (x.shape[0], self.served.out_features))
        self.assertMatches("y", out["y"], self.served.reference(x)["y"])

    def test_every_gradient_matches_autograd_in_default_order(self):
        x, gy = self.inputs(seed=2)
        out = self.decode(self.infer(make_request(self.MODEL, x, gy)))
        expected_order = (["y", "grad_x"] +
                          ["grad_" + p for p in self.served.param_names])
        self.assertEqual(list(out), expected_order,
                         "default outputs: y, grad_x, then every parameter's gradient "
                         "in layer order, weight before bias")
        self.assertEqual(self.served.default_outputs(True), expected_order)
        ref = self.served.reference(x, gy)
        self.assertEqual(out["grad_x"].shape, x.shape, "grad_x has the shape of x as sent")
        self.assertAllMatch(out, ref, expected_order)

    def test_batch_of_one(self):
        x, gy = self.inputs(seed=3, n=1)
        out = self.decode(self.infer(make_request(self.MODEL, x, gy)))
        self.assertAllMatch(out, self.served.reference(x, gy))

    def test_explicit_outputs_in_custom_order(self):
        x, gy = self.inputs(seed=4)
        ref = self.served.reference(x, gy)
        params = ["grad_" + p for p in self.served.param_names]
        everything = self.served.default_outputs(True)
        orders = (list(reversed(everything)),
                  [params[-1], "y", params[0]],
                  [params[0]],
                  ["grad_x", "y"],
                  ["y"])
        # (dict.fromkeys: a single Linear's first and last parameter may be
        # one and the same; an output asked twice is another test's error.)
        for wanted in (list(dict.fromkeys(order)) for order in orders):
            with self.subTest(outputs=wanted):
                resp = self.infer(make_request(self.MODEL, x, gy, outputs=wanted))
                self.assertEqual([t.name for t in resp.outputs], wanted)
                self.assertAllMatch(self.decode(resp), ref, wanted)

    def test_unknown_model_is_not_found(self):
        x, _ = self.inputs(seed=5, n=1)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.ModelInfer,
                        make_request("no_such_model", x), "no_such_model")
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.ModelInfer,
                        make_request(self.MODEL, x, version="17"), "17")


class SingleLinearTest(ServedCase, OipTestCase):
    """One nn.Linear, state dict keys `weight`, `bias`, no prefix: served
    with a ReLU after it, gradients named grad_weight and grad_bias."""

    N = 4

    @classmethod
    def build(cls, tmp):
        module = tm.linear(101, 37, 13)
        path = os.path.join(tmp, "linear.safetensors")
        tm.save_state_dict(module, path)
        return tm.ServedModel(module), [sp.WEIGHTS_FLAG, path]

    def test_gradient_names_are_grad_weight_and_grad_bias(self):
        x, gy = self.inputs(seed=10)
        out = self.decode(self.infer(make_request(self.MODEL, x, gy)))
        self.assertEqual(list(out), ["y", "grad_x", "grad_weight", "grad_bias"])
        self.assertEqual(out["grad_weight"].shape, (13, 37))
        self.assertEqual(out["grad_bias"].shape, (13,))
        self.assertAllMatch(out, self.served.reference(x, gy))


class SingleLinearNoBiasTest(ServedCase, OipTestCase):
    """nn.Linear(bias=False) under the prefix `fc.`, with --model-name: zero
    bias, and no grad_bias at all."""

    MODEL = "lin_nobias"

    @classmethod
    def build(cls, tmp):
        module = tm.linear(102, 20, 7, bias=False)
        path = os.path.join(tmp, "nobias.safetensors")
        names = tm.save_state_dict(module, path, prefix="fc.")
        assert names == ["fc.weight"], names
        return tm.ServedModel(module), [sp.WEIGHTS_FLAG, path, sp.WEIGHTS_PREFIX_FLAG, "fc.",
                                        "--model-name", cls.MODEL]

    def test_no_bias_gradient(self):
        x, gy = self.inputs(seed=10)
        out = self.decode(self.infer(make_request(self.MODEL, x, gy)))
        self.assertEqual(list(out), ["y", "grad_x", "grad_weight"])
        self.assertAllMatch(out, self.served.reference(x, gy))
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer,
                        make_request(self.MODEL, x, gy, outputs=["grad_bias"]), "grad_bias")

    def test_default_name_is_not_served(self):
        x, _ = self.inputs(seed=11, n=1)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.ModelInfer,
                        make_request(DEFAULT_MODEL, x), DEFAULT_MODEL)


class Depth1SequentialTest(ServedCase, OipTestCase):
    """nn.Sequential(Linear, ReLU): keys 0.weight, 0.bias."""

    @classmethod
    def build(cls, tmp):
        module = tm.mlp(103, [10, 5])
        path = os.path.join(tmp, "d1.safetensors")
        tm.save_state_dict(module, path)
        served = tm.ServedModel(module)
        assert served.param_names == ["0.weight", "0.bias"]
        return served, [sp.WEIGHTS_FLAG, path]


class Depth2NestedPrefixTest(ServedCase, OipTestCase):
    """A 2-layer MLP as submodule `net` of a parent whose decoy `head` comes
    first in the state dict; --weights-prefix net. selects it, and the
    gradients are named without the prefix. Also BF16 inputs."""

    N = 2

    @classmethod
    def build(cls, tmp):
        module = tm.mlp(104, [24, 16, 8])
        parent = tm.nested(module, seed=204)
        path = os.path.join(tmp, "parent.safetensors")
        names = tm.save_state_dict(parent, path)
        assert names[0] == "head.weight" and "net.2.bias" in names, names
        return tm.ServedModel(module), [sp.WEIGHTS_FLAG, path, sp.WEIGHTS_PREFIX_FLAG, "net."]

    def test_gradients_named_without_prefix(self):
        x, gy = self.inputs(seed=10)
        out = self.decode(self.infer(make_request(self.MODEL, x, gy)))
        self.assertEqual(list(out), ["y", "grad_x", "grad_0.weight", "grad_0.bias",
                                     "grad_2.weight", "grad_2.bias"])
        self.assertAllMatch(out, self.served.reference(x, gy))

    def test_bf16_inputs_forward_and_backward(self):
        for seed in range(3):
            with self.subTest(seed=seed):
                x, gy = self.served.inputs(2, seed=500 + seed, margin=BF16_MARGIN,
                                           round_bf16=True, attempts=5000)
                # The bf16-rounded values are what the server receives.
                np.testing.assert_array_equal(tm.bf16_round(x), x)
                resp = self.infer(make_request(self.MODEL, x, gy, datatype="BF16"))
                # docs/api.md: outputs come in x's datatype by default.
                out = self.decode(resp, datatype="BF16")
                ref = self.served.reference(x, gy)
                self.assertEqual(list(out), list(ref))
                self.assertAllMatch(out, ref, rtol=BF16_RTOL)


class Depth3Image3072Test(ServedCase, OipTestCase):
    """A 3-layer MLP on 3072 inputs (3x32x32 images) with no ReLU after the
    last Linear (--layers) and a bias=False middle layer; x goes as
    [N, 3, 32, 32] and grad_x comes back in that shape."""

    N = 4
    X_TAIL = (3, 32, 32)
    LAYERS = "linear,relu,linear,relu,linear"

    @classmethod
    def build(cls, tmp):
        module = tm.mlp(105, [3072, 64, 32, 10], final_relu=False, bias=[True, False, True])
        assert tm.layers_of(module) == cls.LAYERS
        path = os.path.join(tmp, "image.safetensors")
        tm.save_state_dict(module, path)
        return (tm.ServedModel(module, layers=cls.LAYERS),
                [sp.WEIGHTS_FLAG, path, LAYERS_FLAG, cls.LAYERS])

    def test_no_relu_after_the_last_linear(self):
        x, _ = self.inputs(seed=10, n=8)
        y = self.decode(self.infer(make_request(self.MODEL, x)))["y"]
        self.assertTrue((y < 0).any(), "the last Linear has no ReLU: y must go negative")
        self.assertMatches("y", y, self.served.reference(x)["y"])

    def test_image_shaped_x_and_flat_x_agree(self):
        x, gy = self.inputs(seed=11)
        self.assertEqual(x.shape, (4, 3, 32, 32))
        image = self.decode(self.infer(make_request(self.MODEL, x, gy)))
        flat = self.decode(self.infer(make_request(self.MODEL, x.reshape(4, 3072), gy)))
        self.assertEqual(image["grad_x"].shape, (4, 3, 32, 32))
        self.assertEqual(flat["grad_x"].shape, (4, 3072))
        self.assertMatches("y", image["y"], flat["y"])
        self.assertMatches("grad_x", image["grad_x"].reshape(4, 3072), flat["grad_x"])
        self.assertAllMatch(image, self.served.reference(x, gy))

    def test_middle_layer_has_no_bias_gradient(self):
        md = self.check_metadata(self.MODEL, self.served)
        names = {t.name for t in md.outputs}
        self.assertIn("grad_2.weight", names)
        self.assertNotIn("grad_2.bias", names)
        x, gy = self.inputs(seed=12, n=2)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer,
                        make_request(self.MODEL, x, gy, outputs=["grad_2.bias"]),
                        "grad_2.bias")

    def test_bf16_forward_on_images(self):
        x, _ = self.inputs(seed=13)
        x = tm.bf16_round(x)
        out = self.decode(self.infer(make_request(self.MODEL, x, datatype="BF16")),
                          datatype="BF16")
        self.assertEqual(list(out), ["y"])
        self.assertMatches("y", out["y"], self.served.reference(x)["y"], rtol=BF16_RTOL)


class Depth5MixedBiasTest(ServedCase, OipTestCase):
    """Five Linears, a ReLU after each (the default, no --layers), biases on
    layers 0, 4 and 8 only."""

    @classmethod
    def build(cls, tmp):
        module = tm.mlp(106, [40, 32, 24, 16, 12, 6], final_relu=True,
                        bias=[True, False, True, False, True])
        path = os.path.join(tmp, "d5.safetensors")
        tm.save_state_dict(module, path)
        served = tm.ServedModel(module)
        assert served.param_names == ["0.weight", "0.bias", "2.weight", "4.weight",
                                      "4.bias", "6.weight", "8.weight", "8.bias"]
        return served, [sp.WEIGHTS_FLAG, path]


class ConsecutiveLinearsTest(ServedCase, OipTestCase):
    """--layers linear,linear,relu: two Linears in a row (keys 0.* and 1.*),
    one ReLU at the end."""

    LAYERS = "linear,linear,relu"

    @classmethod
    def build(cls, tmp):
        module = tm.sequential(107, cls.LAYERS, [12, 9, 6])
        path = os.path.join(tmp, "ll.safetensors")
        tm.save_state_dict(module, path)
        served = tm.ServedModel(module, layers=cls.LAYERS)
        assert served.param_names == ["0.weight", "0.bias", "1.weight", "1.bias"]
        return served, [sp.WEIGHTS_FLAG, path, LAYERS_FLAG, cls.LAYERS]


# -- the reluserve-client CLI ---------------------------------------------------

if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
