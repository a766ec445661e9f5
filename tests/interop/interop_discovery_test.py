#!/usr/bin/python3
"""Interop test, discovery: what a Python gRPC client learns before it infers
(ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, Triton's
ModelConfig, grpc.health.v1 and server reflection), against the real
reluserve-server on 127.0.0.1 (interop_common.py).

    /usr/bin/python3 -B interop_discovery_test.py --server PATH --stubs DIR [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import pathlib  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# First: parses the command line and puts the stubs on sys.path.
import interop_common as ic  # noqa: E402

import grpc  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import model_config_pb2 as mc_pb  # noqa: E402
import grpc_health_v1_pb2 as health_pb  # noqa: E402
import grpc_health_v1_pb2_grpc as health_grpc  # noqa: E402
import grpc_reflection_v1alpha_pb2 as refl_pb  # noqa: E402
import grpc_reflection_v1alpha_pb2_grpc as refl_grpc  # noqa: E402
from interop_common import K, M, MODEL, RPC_TIMEOUT_S  # noqa: E402


class DiscoveryTest(ic.InteropTestCase):
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


if __name__ == "__main__":
    ic.main()
