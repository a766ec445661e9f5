#!/usr/bin/python3
"""Interop test, deep models over HTTP/REST: a --model-repository of
PyTorch nn.Sequential stacks (Triton's layout, torch_models.write_repository)
answered on the server's --http-port in both of tritonclient.http's forms
(binary and JSON, http_client.py), against torch autograd in float64 and,
bit for bit, against the same requests over gRPC:

- mlp3: 3072 -> 32 -> 16 -> 10 with no final ReLU (config.pbtxt layers,
  max_batch_size 8, dynamic batching), x as [N, 3, 32, 32] and flat;
  deep5: five Linears with biases on layers 0, 4 and 8 only; two_versions
  (versions 1 and 2); classifier (inference only);
- forward, full backprop (y, grad_x and grad_<P> for every parameter, in
  the default order), explicit outputs in a custom order, BF16 binary in and
  out; the version in the URL; the inference-only model's refusals, the
  config's batch limit;
- metadata, config, readiness, statistics per version and the repository
  index as JSON, each equal to its gRPC answer.

    /usr/bin/python3 -B interop_http_models_test.py --server PATH --stubs DIR [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import pathlib  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# First: parses the command line and puts the stubs on sys.path.
import http_common as hcom  # noqa: E402

import os  # noqa: E402

from google.protobuf import json_format  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import http_client as hc  # noqa: E402
import model_config_pb2 as mc_pb  # noqa: E402
import torch_models as tm  # noqa: E402
from http_common import (BF16_RTOL, MODES, RPC_TIMEOUT_S, conditioned_inputs,  # noqa: E402
                         grpc_request, http_inputs, http_outputs)

MAX_BATCH = 64
IMAGE = (3, 32, 32)


class RepositoryHttpTest(hcom.HttpTestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_class_server("reluserve-http-repo-", cls.build_repository)

    @classmethod
    def build_repository(cls, tmp):
        mlp3 = tm.mlp(201, [3072, 32, 16, 10], final_relu=False)
        deep5 = tm.mlp(106, [40, 32, 24, 16, 12, 6], final_relu=True,
                       bias=[True, False, True, False, True])
        classifier = tm.mlp(202, [16, 8, 4])
        v1, v2 = tm.mlp(203, [12, 6, 3]), tm.mlp(204, [12, 6, 3])
        layers = tm.layers_of(mlp3)
        root = os.path.join(tmp, "models")
        tm.write_repository(root, [
            ("mlp3", {1: mlp3}, tm.config_pbtxt(name="mlp3", max_batch_size=8, layers=layers,
                                                dynamic_batching=(500, [4]))),
            ("deep5", {1: deep5}, None),
            ("classifier", {1: classifier}, tm.config_pbtxt(backward=False)),
            ("two_versions", {1: v1, 2: v2}, None),
        ])
        cls.models = {
            ("mlp3", "1"): tm.ServedModel(mlp3, layers=layers),
            ("deep5", "1"): tm.ServedModel(deep5),
            ("classifier", "1"): tm.ServedModel(classifier),
            ("two_versions", "1"): tm.ServedModel(v1),
            ("two_versions", "2"): tm.ServedModel(v2),
        }
        return ["--model-repository", root, "--max-batch", MAX_BATCH]

    def inputs(self, key, n, seed, x_tail=None, **kwargs):
        if x_tail is None and key[0] == "mlp3":
            x_tail = IMAGE
        return conditioned_inputs(self.models[key], n, x_tail, seed=seed, **kwargs)

    # -- inference -----------------------------------------------------------
    def test_forward_and_full_backprop_match_torch(self):
        for i, key in enumerate(sorted(self.models)):
            backward = key[0] != "classifier"
            served = self.models[key]
            for n in (1, 4):
                x, gy = self.inputs(key, n, seed=10 * i + n)
                for mode in MODES:
                    for with_gy in ((False, True) if backward else (False,)):
                        g = gy if with_gy else None
                        with self.subTest(model=key, n=n, mode=mode, backward=with_gy):
                            decoded = self.infer_http(
                                key[0], http_inputs(mode, x, g), version=key[1], mode=mode,
                                tritonclient=mode == "binary")
                            ref = served.reference(x, g)
                            self.assertEqual(list(decoded.outputs), served.default_outputs(
                                with_gy))
                            self.assertEqual(list(decoded.outputs), list(ref))
                            if with_gy:
                                self.assertEqual(decoded.outputs["grad_x"].shape, x.shape)
                            self.assertAllMatch(decoded.outputs, ref)

    def test_image_shaped_and_flat_x_agree(self):
        key = ("mlp3", "1")
        x, gy = self.inputs(key, 4, seed=100)
        ref = self.models[key].reference(x, gy)
        names = self.models[key].default_outputs(True)
        got = {}
        for shape_kind, xs in (("image", x), ("flat", x.reshape(4, 3072))):
            for mode in MODES:
                for nested in ((False, True) if mode == "json" else (False,)):
                    with self.subTest(x=shape_kind, mode=mode, nested=nested):
                        inputs = http_inputs(mode, xs, gy, nested=nested)
                        decoded = self.infer_http("mlp3", inputs, http_outputs(mode, names),
                                                  mode=mode)
                        shapes = {t["name"]: t["shape"] for t in decoded.header["outputs"]}
                        self.assertEqual(shapes["grad_x"], list(xs.shape))
                        out = dict(decoded.outputs)
                        out["grad_x"] = out["grad_x"].reshape(x.shape)
                        self.assertAllMatch(out, ref)
                        got[(shape_kind, mode, nested)] = out
        first = got[("image", "binary", False)]
        for variant, out in got.items():
            self.assertBitIdentical(out, first, f"{variant} vs image binary")

    def test_explicit_outputs_in_custom_order(self):
        key = ("deep5", "1")
        served = self.models[key]
        x, gy = self.inputs(key, 3, seed=110)
        ref = served.reference(x, gy)
        params = ["grad_" + p for p in served.param_names]
        for wanted in (list(reversed(served.default_outputs(True))),
                       [params[-1], "y", params[0]], [params[3]], ["grad_x", "y"]):
            for mode in MODES:
                with self.subTest(outputs=wanted, mode=mode):
                    decoded = self.infer_http("deep5", http_inputs(mode, x, gy),
                                              http_outputs(mode, wanted), mode=mode)
                    self.assertEqual(list(decoded.outputs), wanted)
                    self.assertAllMatch(decoded.outputs, ref, wanted)

    def test_bf16_binary_inputs_and_outputs(self):
        key = ("deep5", "1")
        x, gy = self.inputs(key, 2, seed=120, margin=2e-2, round_bf16=True)
        ref = self.models[key].reference(x, gy)
        decoded = self.infer_http("deep5", http_inputs("binary", x, gy, datatype="BF16"))
        self.assertEqual(set(decoded.datatypes.values()), {"BF16"})
        self.assertEqual(list(decoded.outputs), list(ref))
        self.assertAllMatch(decoded.outputs, ref, rtol=BF16_RTOL)
        grpc_out = self.infer_grpc(grpc_request("deep5", x, gy, datatype="BF16"))
        self.assertBitIdentical(decoded.outputs, grpc_out, "BF16")

    def test_http_and_grpc_bit_identical(self):
        for i, key in enumerate(sorted(self.models)):
            gy_too = key[0] != "classifier"
            x, gy = self.inputs(key, 3, seed=130 + i)
            g = gy if gy_too else None
            grpc_out = self.infer_grpc(grpc_request(key[0], x, g, version=key[1]))
            for mode in MODES:
                with self.subTest(model=key, mode=mode):
                    decoded = self.infer_http(key[0], http_inputs(mode, x, g), version=key[1],
                                              mode=mode, tritonclient=mode == "binary")
                    self.assertBitIdentical(decoded.outputs, grpc_out, f"{key} {mode}")

    def test_version_in_the_url(self):
        key1, key2 = ("two_versions", "1"), ("two_versions", "2")
        x, _ = self.inputs(key1, 3, seed=140)
        for version, key in (("1", key1), ("2", key2), ("", key2)):
            with self.subTest(version=version):
                decoded = self.infer_http("two_versions", http_inputs("binary", x),
                                          version=version)
                self.assertEqual(decoded.header["model_version"], key[1],
                                 "no version in the URL: the highest")
                self.assertMatches("y", decoded.outputs["y"], self.models[key].reference(x)["y"],
                                   rtol=1e-4 if key != key1 else hcom.FP32_RTOL)
        for version, fragment in (("17", "17"), ("01", "01")):
            with self.subTest(version=version):
                resp = self.http.infer("two_versions", http_inputs("binary", x), version=version)
                self.assertHttpError(resp, 404, fragment)

    def test_inference_only_model_refuses_grad_y(self):
        key = ("classifier", "1")
        x, gy = self.inputs(key, 2, seed=150)
        for mode in MODES:
            with self.subTest(mode=mode):
                resp = self.http.infer("classifier", http_inputs(mode, x, gy))
                self.assertHttpError(resp, 400, "'grad_y'")
                resp = self.http.infer("classifier", http_inputs(mode, x),
                                       http_outputs(mode, ["grad_x"]))
                self.assertHttpError(resp, 400, "grad_x")

    def test_batch_above_the_configs_max_batch_size(self):
        key = ("mlp3", "1")
        x, _ = self.inputs(key, 9, seed=160)
        for mode in MODES:
            with self.subTest(mode=mode):
                resp = self.http.infer("mlp3", http_inputs(mode, x))
                self.assertHttpError(resp, 400, "9", "8")
        decoded = self.infer_http("mlp3", http_inputs("binary", x[:8]))
        self.assertMatches("y", decoded.outputs["y"], self.models[key].reference(x[:8])["y"])

    # -- the endpoints, against gRPC ---------------------------------------
    def test_metadata_config_and_readiness_of_every_model(self):
        for name, version in sorted(self.models) + [(n, "") for n, _ in sorted(self.models)]:
            with self.subTest(model=name, version=version):
                path = hc.Client.model_path(name, version)
                body = self.get_json(path)
                md = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=name, version=version),
                                             timeout=RPC_TIMEOUT_S)
                self.assertEqual(body["name"], md.name)
                self.assertEqual(body["versions"], list(md.versions))
                self.assertEqual(body["platform"], md.platform)
                for part in ("inputs", "outputs"):
                    self.assertEqual(body[part], [{"name": t.name, "datatype": t.datatype,
                                                   "shape": list(t.shape)}
                                                  for t in getattr(md, part)], part)
                config = self.get_json(path + "/config")
                grpc_config = self.stub.ModelConfig(
                    pb.ModelConfigRequest(name=name, version=version),
                    timeout=RPC_TIMEOUT_S).config
                self.assertEqual(json_format.ParseDict(config, mc_pb.ModelConfig()), grpc_config)
                self.assertEqual(self.http.get(path + "/ready").status, 200)
        config = self.get_json(hc.Client.model_path("mlp3") + "/config")
        self.assertEqual(config["max_batch_size"], 8)
        self.assertEqual(config["dynamic_batching"]["max_queue_delay_microseconds"], 500)
        self.assertEqual(config["dynamic_batching"]["preferred_batch_size"], [4])
        self.assertEqual(self.get_json(hc.Client.model_path("two_versions"))["versions"],
                         ["1", "2"])
        self.assertNotEqual(self.http.get(hc.Client.model_path("two_versions", "3") +
                                          "/ready").status, 200)
        self.assertEqual([t["name"] for t in self.get_json(
            hc.Client.model_path("classifier"))["inputs"]], ["x"])

    def test_repository_index(self):
        want = [{"name": n, "version": v, "state": "READY"} for n, v in sorted(self.models)]
        grpc_index = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(),
                                               timeout=RPC_TIMEOUT_S)
        self.assertEqual([{"name": m.name, "version": m.version, "state": m.state}
                          for m in grpc_index.models], want)
        for ready in (None, True):
            with self.subTest(ready=ready):
                resp = self.http.repository_index(ready)
                self.assertEqual(resp.status, 200, repr(resp))
                self.assertEqual([{k: e.get(k) for k in ("name", "version", "state")}
                                  for e in resp.json()], want)

    def test_statistics_per_version(self):
        def stats(path):
            body = self.get_json(path)
            return {(s["name"], s["version"]): s for s in body["model_stats"]}

        everything = stats("/v2/models/stats")
        self.assertEqual(set(everything), set(self.models))
        self.assertEqual(set(stats(hc.Client.model_path("two_versions") + "/stats")),
                         {("two_versions", "1"), ("two_versions", "2")})
        one_path = hc.Client.model_path("two_versions", "1") + "/stats"
        self.assertEqual(set(stats(one_path)), {("two_versions", "1")})
        before = stats(one_path)[("two_versions", "1")]
        x, gy = self.inputs(("two_versions", "1"), 3, seed=170)
        for mode in MODES:
            decoded = self.infer_http("two_versions", http_inputs(mode, x, gy), version="1",
                                      mode=mode, tritonclient=mode == "binary")
            self.assertEqual(decoded.header["model_version"], "1")
        after = stats(one_path)[("two_versions", "1")]
        self.assertEqual(after["inference_count"] - before["inference_count"], 6)
        self.assertEqual(after["inference_stats"]["success"]["count"] -
                         before["inference_stats"]["success"]["count"], 2)
        v2_before = everything[("two_versions", "2")]
        v2_after = stats("/v2/models/stats")[("two_versions", "2")]
        self.assertEqual(v2_after["inference_count"], v2_before["inference_count"],
                         "version 2 was not asked")
        grpc_stats = self.stub.ModelStatistics(
            pb.ModelStatisticsRequest(name="two_versions", version="1"),
            timeout=RPC_TIMEOUT_S).model_stats[0]
        self.assertEqual((after["inference_count"], after["execution_count"]),
                         (grpc_stats.inference_count, grpc_stats.execution_count))
        self.assertHttpError(self.http.get(hc.Client.model_path("two_versions", "9") + "/stats"),
                             404, "9")


if __name__ == "__main__":
    hcom.main()
