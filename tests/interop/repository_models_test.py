#!/usr/bin/python3
"""Interop test, model repositories: reluserve-server --model-repository DIR
(Triton's layout) with PyTorch state dicts, over a real gRPC channel to
127.0.0.1 with the generated stubs:

- a 3-model repository answered side by side (a 3-layer MLP with a config,
  an inference-only model, a model with versions 1 and 2), each model and
  version against torch autograd, RepositoryIndex, ModelStatistics per model
  and version, NOT_FOUND, INVALID_ARGUMENT;
- start-up refusals (exit code 1, the log naming the file): layers that do
  not chain, an unsupported config.pbtxt field, a config name that is not
  its folder's.

    /usr/bin/python3 -B repository_models_test.py --server PATH --stubs DIR \
        [unittest args]

Shares its helpers with deep_models_test.py. Needs Debian's python3-torch:
without it every test FAILS, saying to run scripts/install-deps.sh.
"""

import sys

sys.dont_write_bytecode = True

import collections  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402
# Importing it parses the command line and puts the stubs on the path.
# TorchInstalledTest runs here too.
from deep_models_test import (DEFAULT_MODEL, FP32_MARGIN, REPOSITORY_FLAG,  # noqa: E402,F401
                              RPC_TIMEOUT_S, UNITTEST_ARGV, OipTestCase,
                              TorchInstalledTest, make_request, run_refused,
                              stats_by_key)

import grpc  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import torch_models as tm  # noqa: E402


class RepositoryTest(OipTestCase):
    """Three models from one --model-repository, answered side by side:
    mlp3 (3072 -> 32 -> 16 -> 10, no final ReLU, config.pbtxt with name,
    max_batch_size 8 and dynamic batching), classifier (backward "false"),
    two_versions (no config.pbtxt; versions 1 and 2 with other weights)."""

    MAX_BATCH = 64

    @classmethod
    def setUpClass(cls):
        cls.start_class_server("reluserve-deep-repo-", cls.build_repository)

    @classmethod
    def build_repository(cls, tmp):
        mlp3 = tm.mlp(201, [3072, 32, 16, 10], final_relu=False)
        layers = tm.layers_of(mlp3)
        classifier = tm.mlp(202, [16, 8, 4])
        v1, v2 = tm.mlp(203, [12, 6, 3]), tm.mlp(204, [12, 6, 3])
        cls.root = os.path.join(tmp, "models")
        cls.paths = tm.write_repository(cls.root, [
            ("mlp3", {1: mlp3},
             tm.config_pbtxt(name="mlp3", max_batch_size=8, layers=layers,
                             dynamic_batching=(500, [4]))),
            ("classifier", {1: classifier}, tm.config_pbtxt(backward=False)),
            ("two_versions", {1: v1, 2: v2}, None),
        ])
        cls.models = {
            ("mlp3", "1"): tm.ServedModel(mlp3, layers=layers),
            ("classifier", "1"): tm.ServedModel(classifier),
            ("two_versions", "1"): tm.ServedModel(v1),
            ("two_versions", "2"): tm.ServedModel(v2),
        }
        return [REPOSITORY_FLAG, cls.root, "--compute-threads", 1,
                "--max-batch", cls.MAX_BATCH]

    def inputs(self, key, n, seed, x_tail=None):
        return self.models[key].inputs(n, x_tail, seed=seed, margin=FP32_MARGIN)

    def stats(self, name="", version=""):
        return stats_by_key(self.stub.ModelStatistics(
            pb.ModelStatisticsRequest(name=name, version=version), timeout=RPC_TIMEOUT_S))

    def test_repository_index_lists_every_version_ready(self):
        for ready in (False, True):
            with self.subTest(ready=ready):
                index = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=ready),
                                                  timeout=RPC_TIMEOUT_S)
                entries = [(m.name, m.version, m.state) for m in index.models]
                self.assertEqual(len(entries), len(set(entries)), entries)
                self.assertEqual(sorted(entries),
                                 sorted((n, v, "READY") for n, v in self.models))

    def test_server_and_models_ready(self):
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest(),
                                              timeout=RPC_TIMEOUT_S).ready)
        for name, version in list(self.models) + [(n, "") for n, _ in self.models]:
            with self.subTest(model=name, version=version):
                self.assertTrue(self.stub.ModelReady(
                    pb.ModelReadyRequest(name=name, version=version),
                    timeout=RPC_TIMEOUT_S).ready)
        self.assertFalse(self.stub.ModelReady(
            pb.ModelReadyRequest(name="two_versions", version="3"),
            timeout=RPC_TIMEOUT_S).ready)

    def test_metadata_of_every_model(self):
        self.check_metadata("mlp3", self.models[("mlp3", "1")])
        md = self.check_metadata("classifier", self.models[("classifier", "1")],
                                 backward=False)
        self.assertEqual([t.name for t in md.inputs], ["x"])
        self.assertEqual([t.name for t in md.outputs], ["y"])
        self.check_metadata("two_versions", self.models[("two_versions", "2")],
                            versions=("1", "2"))
        for version in ("1", "2"):
            md = self.stub.ModelMetadata(
                pb.ModelMetadataRequest(name="two_versions", version=version),
                timeout=RPC_TIMEOUT_S)
            self.assertEqual(md.name, "two_versions")
            self.assertIn(version, list(md.versions))

    def test_model_config_of_every_model(self):
        config = self.check_config("mlp3", self.models[("mlp3", "1")], max_batch_size=8)
        self.assertTrue(config.HasField("dynamic_batching"),
                        "mlp3's config.pbtxt sets dynamic_batching")
        self.assertEqual(config.dynamic_batching.max_queue_delay_microseconds, 500)
        self.assertEqual(list(config.dynamic_batching.preferred_batch_size), [4])
        config = self.check_config("classifier", self.models[("classifier", "1")],
                                   backward=False, max_batch_size=self.MAX_BATCH)
        self.assertEqual([t.name for t in config.input], ["x"])
        self.assertEqual([t.name for t in config.output], ["y"])
        self.assertFalse(config.HasField("dynamic_batching"),
                         "no dynamic_batching in classifier's config, none on the server")
        config = self.check_config("two_versions", self.models[("two_versions", "2")],
                                   max_batch_size=self.MAX_BATCH)
        self.assertFalse(config.HasField("dynamic_batching"))

    def test_each_model_and_version_gives_its_own_numbers(self):
        cases = []
        for i, key in enumerate(sorted(self.models)):
            backward = key[0] != "classifier"
            tail = (3, 32, 32) if key[0] == "mlp3" else None
            x, gy = self.inputs(key, 3, seed=10 + i, x_tail=tail)
            cases.append((key, x, gy if backward else None))
        # One after the other, interleaved, then all in flight at once.
        for round_ in range(2):
            for key, x, gy in cases:
                with self.subTest(model=key, round=round_):
                    resp = self.infer(make_request(key[0], x, gy, version=key[1]))
                    self.assertEqual((resp.model_name, resp.model_version), key)
                    out = self.decode(resp)
                    ref = self.models[key].reference(x, gy)
                    self.assertEqual(list(out), list(ref))
                    self.assertAllMatch(out, ref)
        futures = [(key, x, gy, self.stub.ModelInfer.future(
            make_request(key[0], x, gy, version=key[1], request_id=str(i)),
            timeout=RPC_TIMEOUT_S)) for i, (key, x, gy) in enumerate(cases * 2)]
        for i, (key, x, gy, future) in enumerate(futures):
            with self.subTest(model=key, concurrent=i):
                resp = future.result(timeout=RPC_TIMEOUT_S)
                self.assertEqual(resp.id, str(i))
                self.assertAllMatch(self.decode(resp), self.models[key].reference(x, gy))

    def test_versions_differ_and_empty_version_is_the_highest(self):
        v1, v2 = self.models[("two_versions", "1")], self.models[("two_versions", "2")]
        # An x whose ReLU masks are certain under both versions' weights.
        for seed in range(100):
            x, _ = v1.inputs(3, seed=3000 + seed, margin=FP32_MARGIN)
            if all(ratio.min() >= FP32_MARGIN for ratio, _on in v2.relu_margins(x)):
                break
        else:
            self.fail("no input well-conditioned for both versions")
        ref1, ref2 = v1.reference(x), v2.reference(x)
        self.assertGreater(tm.max_relative_error(ref1["y"], ref2["y"]), 1e-2,
                           "the two versions' weights must give different answers")
        got = {}
        for version in ("1", "2", ""):
            resp = self.infer(make_request("two_versions", x, version=version))
            self.assertEqual(resp.model_version, version or "2",
                             "an empty version selects the highest")
            got[version] = self.decode(resp)["y"]
        self.assertMatches("v1 y", got["1"], ref1["y"])
        self.assertMatches("v2 y", got["2"], ref2["y"])
        self.assertMatches("default y", got[""], ref2["y"])

    def test_inference_only_model_refuses_grad_y(self):
        served = self.models[("classifier", "1")]
        x, gy = served.inputs(2, seed=40, margin=FP32_MARGIN)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer,
                        make_request("classifier", x, gy))
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer,
                        make_request("classifier", x, outputs=["grad_x"]))
        out = self.decode(self.infer(make_request("classifier", x)))
        self.assertEqual(list(out), ["y"])
        self.assertMatches("y", out["y"], served.reference(x)["y"])

    def test_unknown_model_or_version_is_not_found(self):
        x, _ = self.inputs(("two_versions", "1"), 1, seed=50)
        for name, version, fragment in (("no_such_model", "", "no_such_model"),
                                        (DEFAULT_MODEL, "", DEFAULT_MODEL),
                                        ("two_versions", "17", "17")):
            with self.subTest(model=name, version=version):
                self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.ModelInfer,
                                make_request(name, x, version=version), fragment)
                self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.ModelMetadata,
                                pb.ModelMetadataRequest(name=name, version=version), fragment)
                self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.ModelConfig,
                                pb.ModelConfigRequest(name=name, version=version), fragment)

    def test_batch_above_the_configs_max_batch_size_is_refused(self):
        x, _ = self.inputs(("mlp3", "1"), 9, seed=60)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer,
                        make_request("mlp3", x))
        out = self.decode(self.infer(make_request("mlp3", x[:8])))
        self.assertMatches("y", out["y"], self.models[("mlp3", "1")].reference(x[:8])["y"])

    def test_statistics_per_model_and_version(self):
        keys = set(self.models)
        before = self.stats()
        self.assertEqual(set(before), keys, "an empty name lists every model and version")
        # (model, version asked, version counted, rows, requests, backward)
        plan = [("mlp3", "1", "1", 2, 3, True), ("classifier", "", "1", 5, 2, False),
                ("two_versions", "1", "1", 1, 4, True),
                ("two_versions", "", "2", 3, 1, True),
                ("two_versions", "2", "2", 2, 2, False)]
        sent = collections.Counter()
        for name, version, counted, rows, requests, backward in plan:
            key = (name, counted)
            tail = (3, 32, 32) if name == "mlp3" else None
            x, gy = self.inputs(key, rows, seed=70, x_tail=tail)
            for _ in range(requests):
                resp = self.infer(make_request(name, x, gy if backward else None,
                                               version=version))
                self.assertEqual(resp.model_version, counted)
            sent[(key, "rows")] += rows * requests
            sent[(key, "requests")] += requests
        after = self.stats()
        self.assertEqual(set(after), keys)
        for key in sorted(keys):
            with self.subTest(model=key):
                b, a = before[key], after[key]
                self.assertEqual(a.name, key[0])
                self.assertEqual(a.version, key[1])
                self.assertEqual(a.inference_count - b.inference_count, sent[(key, "rows")])
                requests = sent[(key, "requests")]
                s_a, s_b = a.inference_stats, b.inference_stats
                self.assertEqual(s_a.success.count - s_b.success.count, requests)
                self.assertGreaterEqual(a.execution_count - b.execution_count, 1)
                self.assertLessEqual(a.execution_count - b.execution_count, requests)
                self.assertGreater(s_a.success.ns - s_b.success.ns, 0)
                self.assertEqual(s_a.compute_input.count, s_a.compute_infer.count)
                self.assertEqual(s_a.compute_infer.count, s_a.compute_output.count)
                self.assertEqual(s_a.fail.count, s_b.fail.count)
        one = self.stats(name="two_versions", version="1")
        self.assertEqual(set(one), {("two_versions", "1")})
        both = self.stats(name="two_versions")
        self.assertEqual(set(both), {("two_versions", "1"), ("two_versions", "2")})
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.stub.ModelStatistics,
                        pb.ModelStatisticsRequest(name="no_such_model"), "no_such_model")


# -- refused start-ups ---------------------------------------------------------

class RefusedStartTest(unittest.TestCase):
    """A bad model stops start-up: exit code 1, the log naming the file."""

    def setUp(self):
        tm.require_torch()
        self.tmp = tempfile.TemporaryDirectory(prefix="reluserve-deep-refused-")
        self.addCleanup(self.tmp.cleanup)

    def assertRefused(self, args, *fragments):
        result = run_refused(args)
        both = f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        self.assertEqual(result.returncode, 1, both)
        self.assertNotRegex(result.stdout + result.stderr, sp.LISTENING_RE, both)
        for fragment in fragments:
            # The server logs to standard output (spdlog), as every line.
            self.assertIn(fragment, result.stdout + result.stderr,
                          f"the log must name {fragment!r}\n{both}")
        return result

    def unchained(self):
        tm.require_torch()
        tm.torch.manual_seed(301)
        nn = tm.nn
        return nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(5, 3), nn.ReLU())

    def good_model(self):
        return tm.mlp(302, [6, 4, 2])

    def test_layers_that_do_not_chain_weights_file(self):
        path = os.path.join(self.tmp.name, "unchained.safetensors")
        tm.save_state_dict(self.unchained(), path)
        self.assertRefused([sp.WEIGHTS_FLAG, path], path)

    def test_layers_that_do_not_chain_in_repository(self):
        root = os.path.join(self.tmp.name, "repo")
        paths = tm.write_repository(root, [("good", {1: self.good_model()}, None),
                                           ("unchained", {1: self.unchained()}, None)])
        self.assertRefused([REPOSITORY_FLAG, root], paths[("unchained", "1")])

    def test_unsupported_config_field(self):
        root = os.path.join(self.tmp.name, "repo")
        tm.write_repository(root, [
            ("good", {1: self.good_model()}, None),
            ("grouped", {1: self.good_model()},
             tm.config_pbtxt(name="grouped",
                             extra="instance_group [ { count: 1 kind: KIND_CPU } ]"))])
        config = os.path.join(root, "grouped", "config.pbtxt")
        self.assertRefused([REPOSITORY_FLAG, root], config, "instance_group")

    def test_config_name_differs_from_its_folder(self):
        root = os.path.join(self.tmp.name, "repo")
        tm.write_repository(root, [
            ("good", {1: self.good_model()}, None),
            ("folder_name", {1: self.good_model()}, tm.config_pbtxt(name="other_name"))])
        config = os.path.join(root, "folder_name", "config.pbtxt")
        self.assertRefused([REPOSITORY_FLAG, root], config, "other_name")


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
