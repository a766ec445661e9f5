#!/usr/bin/python3
"""Interop test, inference: ModelInfer's answers (raw and typed inputs,
output selection and order, ids, concurrent calls and channels) against a
float64 numpy reference, and the errors the contract names (NOT_FOUND,
INVALID_ARGUMENT), against the real reluserve-server on 127.0.0.1
(interop_common.py).

    /usr/bin/python3 -B interop_inference_test.py --server PATH --stubs DIR [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import pathlib  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# First: parses the command line and puts the stubs on sys.path.
import interop_common as ic  # noqa: E402

import concurrent.futures  # noqa: E402

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
from interop_common import (B, CHANNEL_OPTIONS, K, M, MODEL, RPC_TIMEOUT_S, W,  # noqa: E402
                            input_tensor, random_inputs, raw, reference)


class InferenceTest(ic.InteropTestCase):
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
    ic.main()
