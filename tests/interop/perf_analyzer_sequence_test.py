#!/usr/bin/python3
"""Interop test, Triton's perf_analyzer: the calls perf_analyzer makes, in
its order, with the generated stubs against reluserve-server serving a
--model-repository, for an inference-only model (backward "false") and for
a full model (forward and backward):

  1. ModelMetadata   (inputs, outputs, versions)
  2. ModelConfig     max_batch_size > 0 (and >= -b), input/output names
                     exactly the metadata's, every input's dims = its
                     metadata shape without the batch dimension
  3. ServerMetadata  extensions include "statistics", "model_configuration"
  4. ModelStatistics before
  5. `-b 4` inference: every input the metadata lists, its batch dimension
     filled with 4, every output the metadata lists asked for
  6. ModelStatistics after: inference_count grew by 4 x requests, success
     by the requests, execution_count grew, compute_input / compute_infer /
     compute_output counts equal, success.ns > 0, numeric versions.

perf_analyzer takes an error with an empty message as success, so every
error on ModelConfig (and ModelMetadata) must carry a message.

    /usr/bin/python3 -B perf_analyzer_sequence_test.py --server PATH --stubs DIR [unittest args]

Needs Debian's python3-torch (the models and their reference answers):
without it the tests FAIL, saying to run scripts/install-deps.sh.
"""

import sys

sys.dont_write_bytecode = True

import os  # noqa: E402
import pathlib  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# First: parses the command line, puts the stubs on sys.path, and holds the
# request and assertion helpers this test shares.
import deep_models_test as dm  # noqa: E402

import grpc  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import model_config_pb2 as mc_pb  # noqa: E402
import torch_models as tm  # noqa: E402
from deep_models_test import (FP32_MARGIN, RPC_TIMEOUT_S, UNITTEST_ARGV,  # noqa: E402
                              make_request, stats_by_key)

BATCH = 4       # perf_analyzer -b 4
REQUESTS = 6    # requests per measurement; bounded
MAX_BATCH = 64  # the server's --max-batch
TRITON_TYPES = {"FP32": mc_pb.TYPE_FP32, "BF16": mc_pb.TYPE_BF16}


class TorchInstalledTest(dm.TorchInstalledTest):
    pass


class PerfAnalyzerSequenceTest(dm.OipTestCase):
    """One repository: `image_classifier` (3072 -> 16 -> 10, backward
    "false", max_batch_size 16) and `trainable` (20 -> 16 -> 12 -> 8, no
    final ReLU, dynamic batching, versions 1 and 3)."""

    @classmethod
    def setUpClass(cls):
        cls.start_class_server("reluserve-perf-seq-", cls.build_repository)

    @classmethod
    def build_repository(cls, tmp):
        classifier = tm.mlp(401, [3072, 16, 10])
        t1 = tm.mlp(402, [20, 16, 12, 8], final_relu=False)
        t3 = tm.mlp(403, [20, 16, 12, 8], final_relu=False)
        layers = tm.layers_of(t1)
        root = os.path.join(tmp, "models")
        tm.write_repository(root, [
            ("image_classifier", {1: classifier},
             tm.config_pbtxt(name="image_classifier", max_batch_size=16,
                             backward=False)),
            ("trainable", {1: t1, 3: t3},
             tm.config_pbtxt(layers=layers, dynamic_batching=(1000, [8]))),
        ])
        cls.models = {
            ("image_classifier", "1"): tm.ServedModel(classifier),
            ("trainable", "1"): tm.ServedModel(t1, layers=layers),
            ("trainable", "3"): tm.ServedModel(t3, layers=layers),
        }
        return [dm.REPOSITORY_FLAG, root, "--compute-threads", 1, "--max-batch", MAX_BATCH]

    # -- the sequence --------------------------------------------------------
    def discover(self, model, version, backward):
        """Steps 1-3; returns (metadata, config)."""
        self.assertTrue(self.stub.ServerLive(pb.ServerLiveRequest(),
                                             timeout=RPC_TIMEOUT_S).live)
        self.assertTrue(self.stub.ModelReady(pb.ModelReadyRequest(name=model, version=version),
                                             timeout=RPC_TIMEOUT_S).ready)
        # 1. ModelMetadata
        md = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=model, version=version),
                                     timeout=RPC_TIMEOUT_S)
        self.assertEqual(md.name, model)
        self.assertTrue(md.versions, "metadata lists the model's versions")
        for v in md.versions:
            self.assertTrue(v.isdigit(), f"version {v!r} is not a number")
        self.assertTrue(md.inputs and md.outputs)
        names_in = [t.name for t in md.inputs]
        names_out = [t.name for t in md.outputs]
        if backward:
            self.assertEqual(names_in, ["x", "grad_y"])
            self.assertIn("grad_x", names_out)
        else:
            self.assertEqual(names_in, ["x"])
            self.assertEqual(names_out, ["y"])
        for t in md.inputs:
            self.assertEqual(t.datatype, "FP32", t.name)
            self.assertEqual(t.shape[0], -1, f"{t.name}: the batch dimension is -1")
            self.assertTrue(all(d > 0 for d in t.shape[1:]), f"{t.name}: {list(t.shape)}")

        # 2. ModelConfig
        config = self.stub.ModelConfig(pb.ModelConfigRequest(name=model, version=version),
                                       timeout=RPC_TIMEOUT_S).config
        self.assertEqual(config.name, model)
        self.assertGreater(config.max_batch_size, 0)
        self.assertGreaterEqual(config.max_batch_size, BATCH, "-b 4 must fit")
        self.assertEqual([t.name for t in config.input], names_in,
                         "config inputs must be the metadata's, exactly")
        self.assertEqual([t.name for t in config.output], names_out,
                         "config outputs must be the metadata's, exactly")
        for t, m in zip(config.input, md.inputs):
            self.assertEqual(list(t.dims), list(m.shape[1:]),
                             f"{t.name}: dims = metadata shape without the batch dim")
            self.assertEqual(t.data_type, TRITON_TYPES[m.datatype], t.name)
            self.assertEqual(t.optional, t.name == "grad_y", t.name)
        for t, m in zip(config.output, md.outputs):
            shape = list(m.shape)
            self.assertEqual(list(t.dims), shape[1:] if shape[0] == -1 else shape, t.name)
            self.assertEqual(t.data_type, TRITON_TYPES[m.datatype], t.name)

        # 3. ServerMetadata
        sm = self.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=RPC_TIMEOUT_S)
        self.assertTrue(sm.name)
        self.assertIn("statistics", list(sm.extensions))
        self.assertIn("model_configuration", list(sm.extensions))
        return md, config

    def statistics(self, model, version):
        stats = stats_by_key(self.stub.ModelStatistics(
            pb.ModelStatisticsRequest(name=model, version=version), timeout=RPC_TIMEOUT_S))
        for (name, v), s in stats.items():
            self.assertEqual(name, model)
            self.assertTrue(v.isdigit(), f"statistics version {v!r} is not a number")
        return stats

    def run_sequence(self, model, version="", backward=True, concurrency=1):
        md, config = self.discover(model, version, backward)
        counted = version or max(md.versions, key=int)
        served = self.models[(model, counted)]
        every_version = {(model, v) for v in md.versions}
        # 4. ModelStatistics before
        before = self.statistics(model, "")
        self.assertEqual(set(before), every_version)
        before_one = self.statistics(model, counted)
        self.assertEqual(set(before_one), {(model, counted)})

        # 5. -b 4: every input the metadata lists, the batch dim filled.
        shapes = {t.name: [BATCH if d == -1 else d for d in t.shape] for t in md.inputs}
        x, gy = served.inputs(BATCH, tuple(shapes["x"][1:]), seed=17, margin=FP32_MARGIN)
        data = {"x": x, "grad_y": gy}
        self.assertEqual(list(x.shape), shapes["x"])
        if "grad_y" in shapes:
            self.assertEqual(list(gy.shape), shapes["grad_y"])
        wanted = [t.name for t in md.outputs]
        request = pb.ModelInferRequest(model_name=model, model_version=version)
        for t in md.inputs:
            request.inputs.add(name=t.name, datatype=t.datatype, shape=shapes[t.name])
            request.raw_input_contents.append(tm.raw_bytes(data[t.name], t.datatype))
        for name in wanted:
            request.outputs.add(name=name)
        reference = served.reference(x, gy if backward else None)
        out_shapes = {t.name: [BATCH if d == -1 else d for d in t.shape] for t in md.outputs}

        responses = []
        for start in range(0, REQUESTS, concurrency):
            wave = [self.stub.ModelInfer.future(request, timeout=RPC_TIMEOUT_S)
                    for _ in range(min(concurrency, REQUESTS - start))]
            responses += [f.result(timeout=RPC_TIMEOUT_S) for f in wave]
        self.assertEqual(len(responses), REQUESTS)
        for resp in responses:
            self.assertEqual(resp.model_name, model)
            self.assertEqual(resp.model_version, counted)
            self.assertEqual([t.name for t in resp.outputs], wanted)
            out = self.decode(resp)
            for name in wanted:
                self.assertEqual(list(out[name].shape), out_shapes[name], name)
            self.assertAllMatch(out, reference, wanted)

        # 6. ModelStatistics after
        after = self.statistics(model, "")
        self.assertEqual(set(after), every_version)
        for key in sorted(every_version):
            with self.subTest(statistics=key):
                a, b = after[key], before[key]
                sa, sb = a.inference_stats, b.inference_stats
                self.assertEqual(sa.compute_input.count, sa.compute_infer.count)
                self.assertEqual(sa.compute_infer.count, sa.compute_output.count)
                if key[1] != counted:
                    self.assertEqual(a.inference_count, b.inference_count,
                                     "another version's counts must not move")
                    self.assertEqual(sa.success.count, sb.success.count)
                    continue
                self.assertEqual(a.inference_count - b.inference_count, BATCH * REQUESTS)
                self.assertEqual(sa.success.count - sb.success.count, REQUESTS)
                self.assertGreater(a.execution_count, b.execution_count)
                self.assertLessEqual(a.execution_count - b.execution_count, REQUESTS)
                self.assertGreater(sa.success.ns, 0)
                self.assertGreater(sa.success.ns, sb.success.ns)
                self.assertGreater(sa.compute_infer.count, sb.compute_infer.count)
                self.assertEqual(sa.fail.count, sb.fail.count, "no request failed")
        return md, config

    # -- tests ---------------------------------------------------------------
    def test_perf_analyzer_sequence_inference_only_model(self):
        _, config = self.run_sequence("image_classifier", backward=False)
        self.assertEqual(config.max_batch_size, 16)
        self.assertFalse(config.HasField("dynamic_batching"))

    def test_perf_analyzer_sequence_full_model(self):
        md, config = self.run_sequence("trainable")
        self.assertEqual(sorted(md.versions, key=int), ["1", "3"])
        self.assertEqual(config.max_batch_size, MAX_BATCH)
        self.assertEqual([t.name for t in md.outputs],
                         ["y", "grad_x", "grad_0.weight", "grad_0.bias", "grad_2.weight",
                          "grad_2.bias", "grad_4.weight", "grad_4.bias"])
        self.assertTrue(config.HasField("dynamic_batching"))
        self.assertEqual(config.dynamic_batching.max_queue_delay_microseconds, 1000)
        self.assertEqual(list(config.dynamic_batching.preferred_batch_size), [8])

    def test_perf_analyzer_sequence_full_model_concurrency_2(self):
        self.run_sequence("trainable", concurrency=2)

    def test_perf_analyzer_sequence_explicit_older_version(self):
        # perf_analyzer -x 1: version 1's counts move, version 3's do not.
        self.run_sequence("trainable", version="1")

    def test_inference_only_model_refuses_grad_y(self):
        served = self.models[("image_classifier", "1")]
        x, gy = served.inputs(BATCH, seed=5, margin=FP32_MARGIN)
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.stub.ModelInfer,
                        make_request("image_classifier", x, gy))

    def test_errors_carry_a_message(self):
        # An empty message would read as success to perf_analyzer.
        for name, version, fragment in (("resnet50", "", "resnet50"),
                                        ("trainable", "2", "2"),
                                        ("trainable", "99", "99")):
            for rpc, request in (
                    (self.stub.ModelConfig, pb.ModelConfigRequest(name=name, version=version)),
                    (self.stub.ModelMetadata,
                     pb.ModelMetadataRequest(name=name, version=version))):
                with self.subTest(model=name, version=version, rpc=type(request).__name__):
                    err = self.assertCode(grpc.StatusCode.NOT_FOUND, rpc, request, fragment)
                    self.assertTrue(err.details().strip())


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
