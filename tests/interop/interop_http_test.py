#!/usr/bin/python3
"""Interop test, inference over HTTP/REST: the default model `linear_relu`
(one nn.Linear(3072, 100) + ReLU, from --weights) answered on the server's
--http-port in KServe v2 REST with Triton's binary tensor extension, in
both of tritonclient.http's forms: **binary** (its default: inputs after
the JSON, outputs in the binary section) and **JSON** (binary_data=False:
numbers in "data"). Checked against torch autograd in float64 (max|diff| <=
1e-5 x max|expected|, as deep_models_test.py) and, bit for bit, against the
same request over gRPC:

- forward and forward + backward (y, grad_x, grad_weight, grad_bias), N = 1
  and N = 100; x as [N, 3, 32, 32] (grad_x in x's shape); nested JSON data;
- requested outputs: subset and order, binary and JSON side by side,
  binary_data_output; inputs of both forms in one request; id and version;
- BF16 binary inputs and outputs, the output parameter datatype; BF16 in
  JSON refused;
- NaN and Inf: JSON tokens NaN / Infinity / -Infinity, the ReLU backward's
  select;
- one keep-alive connection, several connections at once; gzip and
  deflate request bodies (tritonclient's request_compression_algorithm),
  Expect: 100-continue (curl) and chunked bodies.

    /usr/bin/python3 -B interop_http_test.py --server PATH --stubs DIR [unittest args]

(endpoints and malformed requests: interop_http_endpoints_test.py; deep
models from a repository: interop_http_models_test.py.)
"""

import sys

sys.dont_write_bytecode = True

import pathlib  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# First: parses the command line and puts the stubs on sys.path.
import http_common as hcom  # noqa: E402

import concurrent.futures  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402

import http_client as hc  # noqa: E402
import server_process as sp  # noqa: E402
import torch_models as tm  # noqa: E402
from http_common import (BF16_MARGIN, BF16_RTOL, DEFAULT_MODEL as MODEL, MODES,  # noqa: E402
                         conditioned_inputs, grpc_request, http_inputs, http_outputs)

K, M = 3072, 100
MAX_BATCH = 128
ALL = ["y", "grad_x", "grad_weight", "grad_bias"]


class DefaultModelHttpTest(hcom.HttpTestCase):
    """nn.Linear(3072, 100) served as linear_relu, --max-batch 128."""

    @classmethod
    def setUpClass(cls):
        def build(tmp):
            module = tm.linear(1101, K, M)
            path = os.path.join(tmp, "linear.safetensors")
            tm.save_state_dict(module, path)
            cls.served = tm.ServedModel(module)
            return [sp.WEIGHTS_FLAG, path, "--max-batch", MAX_BATCH]
        cls.start_class_server("reluserve-http-", build)

    def inputs(self, n, seed, x_tail=None, **kwargs):
        return conditioned_inputs(self.served, n, x_tail, seed=seed, **kwargs)

    def default_infer(self, mode, x, gy=None, **kwargs):
        """No outputs named: tritonclient's binary default, or a plain JSON
        request (no parameters at all) in mode "json"."""
        return self.infer_http(MODEL, http_inputs(mode, x, gy), mode=mode,
                               tritonclient=mode == "binary", **kwargs)

    # -- forward and backward ------------------------------------------------
    def test_forward_n1_and_n100(self):
        for n in (1, 100):
            x, _ = self.inputs(n, seed=n)
            ref = self.served.reference(x)
            for mode in MODES:
                with self.subTest(n=n, mode=mode):
                    out = self.default_infer(mode, x).outputs
                    self.assertEqual(list(out), ["y"], "no grad_y, no outputs asked: y only")
                    self.assertEqual(out["y"].shape, (n, M))
                    self.assertMatches("y", out["y"], ref["y"])

    def test_forward_backward_n1_and_n100(self):
        for n in (1, 100):
            x, gy = self.inputs(n, seed=10 + n)
            ref = self.served.reference(x, gy)
            for mode in MODES:
                with self.subTest(n=n, mode=mode):
                    decoded = self.default_infer(mode, x, gy)
                    out = decoded.outputs
                    self.assertEqual(list(out), ALL)
                    self.assertEqual(out["grad_x"].shape, (n, K))
                    self.assertEqual(out["grad_weight"].shape, (M, K))
                    self.assertEqual(out["grad_bias"].shape, (M,))
                    self.assertEqual(set(decoded.datatypes.values()), {"FP32"})
                    self.assertAllMatch(out, ref)

    def test_image_shaped_x_gives_image_shaped_grad_x(self):
        x, gy = self.inputs(4, seed=20, x_tail=(3, 32, 32))
        ref = self.served.reference(x, gy)
        for mode in MODES:
            for nested in ((False, True) if mode == "json" else (False,)):
                with self.subTest(mode=mode, nested=nested):
                    inputs = [hc.Input("x", x, binary=mode == "binary", nested=nested),
                              hc.Input("grad_y", gy, binary=mode == "binary", nested=nested)]
                    decoded = self.infer_http(MODEL, inputs, http_outputs(mode, ALL),
                                              mode=mode)
                    shapes = {t["name"]: t["shape"] for t in decoded.header["outputs"]}
                    self.assertEqual(shapes["grad_x"], [4, 3, 32, 32])
                    self.assertEqual(shapes["y"], [4, M])
                    self.assertAllMatch(decoded.outputs, ref)

    def test_nested_json_data_equals_flat(self):
        x, gy = self.inputs(3, seed=21)
        flat = self.infer_http(MODEL, http_inputs("json", x, gy), http_outputs("json", ALL),
                               mode="json").outputs
        nested = self.infer_http(MODEL, http_inputs("json", x, gy, nested=True),
                                 http_outputs("json", ALL), mode="json").outputs
        self.assertBitIdentical(nested, flat, "nested vs flat")
        self.assertAllMatch(flat, self.served.reference(x, gy))

    # -- outputs -----------------------------------------------------------
    def test_requested_outputs_subset_and_order(self):
        x, gy = self.inputs(5, seed=30)
        ref = self.served.reference(x, gy)
        for wanted in (["grad_bias", "y"], ["grad_weight"], ["grad_x", "grad_bias", "y"],
                       ["grad_bias", "grad_weight", "grad_x", "y"], ["y"]):
            for mode in MODES:
                with self.subTest(outputs=wanted, mode=mode):
                    decoded = self.infer_http(MODEL, http_inputs(mode, x, gy),
                                              http_outputs(mode, wanted), mode=mode)
                    self.assertEqual([t["name"] for t in decoded.header["outputs"]], wanted)
                    self.assertAllMatch(decoded.outputs, ref, wanted)

    def test_binary_and_json_outputs_in_one_response(self):
        # Per output, as tritonclient's InferRequestedOutput(binary_data=...):
        # the binary ones fill the binary section in outputs order, the others
        # carry "data".
        x, gy = self.inputs(3, seed=31)
        ref = self.served.reference(x, gy)
        for inputs_mode in MODES:
            with self.subTest(inputs=inputs_mode):
                outputs = [hc.Output("grad_bias", binary=False), hc.Output("grad_x"),
                           hc.Output("y", binary=False), hc.Output("grad_weight")]
                resp = self.http.infer(MODEL, http_inputs(inputs_mode, x, gy), outputs)
                decoded = hc.decode_inference(resp)
                self.assertEqual(list(decoded.outputs), ["grad_bias", "grad_x", "y",
                                                         "grad_weight"])
                self.assertEqual(decoded.binary, ["grad_x", "grad_weight"])
                self.assertIsNotNone(resp.header(hc.HEADER_LENGTH))
                self.assertAllMatch(decoded.outputs, ref)

    def test_binary_data_output_parameter(self):
        x, gy = self.inputs(2, seed=32)
        ref = self.served.reference(x, gy)
        # tritonclient with JSON inputs and no outputs named: binary outputs.
        decoded = self.infer_http(MODEL, http_inputs("json", x, gy), mode="json",
                                  expect_binary=True)
        self.assertEqual(list(decoded.outputs), ALL)
        self.assertAllMatch(decoded.outputs, ref)
        # Binary inputs, binary_data_output false: every output in JSON.
        decoded = self.infer_http(MODEL, http_inputs("binary", x, gy),
                                  parameters={"binary_data_output": False},
                                  expect_binary=False)
        self.assertEqual(list(decoded.outputs), ALL)
        self.assertAllMatch(decoded.outputs, ref)

    def test_inputs_of_both_forms_in_one_request(self):
        # tritonclient lets each InferInput choose binary_data on its own.
        x, gy = self.inputs(3, seed=33)
        ref = self.served.reference(x, gy)
        for x_binary in (True, False):
            with self.subTest(x_binary=x_binary):
                inputs = [hc.Input("x", x, binary=x_binary),
                          hc.Input("grad_y", gy, binary=not x_binary)]
                decoded = self.infer_http(MODEL, inputs)
                self.assertEqual(list(decoded.outputs), ALL)
                self.assertAllMatch(decoded.outputs, ref)

    def test_id_and_version_echoed(self):
        x, _ = self.inputs(1, seed=34)
        for rid in ("http-req-42", "another id / with spaces", "caf\u00e9 \"quoted\""):
            for mode in MODES:
                with self.subTest(id=rid, mode=mode):
                    decoded = self.infer_http(MODEL, http_inputs(mode, x), request_id=rid,
                                              mode=mode, tritonclient=mode == "binary")
                    self.assertEqual(decoded.header.get("id"), rid)
        decoded = self.infer_http(MODEL, http_inputs("binary", x), version="1")
        self.assertEqual(decoded.header["model_version"], "1")
        self.assertNotIn("id", decoded.header, "no id asked, none echoed")

    def test_content_types_are_accepted(self):
        # tritonclient sends none; curl users send these.
        x, _ = self.inputs(2, seed=35)
        ref = self.served.reference(x)
        for mode, content_type in (("binary", "application/octet-stream"),
                                   ("json", "application/json"),
                                   ("json", "application/json; charset=utf-8")):
            with self.subTest(content_type=content_type):
                decoded = self.infer_http(MODEL, http_inputs(mode, x),
                                          http_outputs(mode, ["y"]), mode=mode,
                                          content_type=content_type)
                self.assertMatches("y", decoded.outputs["y"], ref["y"])

    # -- BF16 --------------------------------------------------------------
    def test_bf16_binary_inputs_and_outputs(self):
        x, gy = self.inputs(3, seed=40, round_bf16=True, margin=BF16_MARGIN)
        ref = self.served.reference(x, gy)
        # Default: outputs in x's datatype.
        decoded = self.infer_http(MODEL, http_inputs("binary", x, gy, datatype="BF16"))
        self.assertEqual(list(decoded.outputs), ALL)
        self.assertEqual(set(decoded.datatypes.values()), {"BF16"})
        self.assertAllMatch(decoded.outputs, ref, rtol=BF16_RTOL)
        grpc_out = self.infer_grpc(grpc_request(MODEL, x, gy, datatype="BF16"))
        self.assertBitIdentical(decoded.outputs, grpc_out, "BF16")
        # The output parameter datatype: FP32 out of BF16 in, and back.
        outputs = http_outputs("binary", ["grad_weight", "y"], datatype="FP32")
        decoded = self.infer_http(MODEL, http_inputs("binary", x, gy, datatype="BF16"),
                                  outputs)
        self.assertEqual(decoded.datatypes, {"grad_weight": "FP32", "y": "FP32"})
        self.assertAllMatch(decoded.outputs, ref, ["grad_weight", "y"], rtol=BF16_RTOL)
        grpc_out = self.infer_grpc(grpc_request(MODEL, x, gy, ["grad_weight", "y"],
                                                datatype="BF16", out_datatype="FP32"))
        self.assertBitIdentical(decoded.outputs, grpc_out, "BF16 in, FP32 out")
        decoded = self.infer_http(MODEL, http_inputs("binary", x, gy),
                                  http_outputs("binary", ALL, datatype="BF16"))
        self.assertEqual(set(decoded.datatypes.values()), {"BF16"})
        self.assertAllMatch(decoded.outputs, ref, rtol=BF16_RTOL)

    def test_bf16_in_json_is_refused(self):
        x, _ = self.inputs(2, seed=41)
        resp = self.http.infer(MODEL, http_inputs("json", x, datatype="BF16"),
                               http_outputs("json", ["y"]))
        self.assertHttpError(resp, 400, "BF16")
        # BF16 outputs asked for in JSON: there is no JSON form of BF16 either.
        resp = self.http.infer(MODEL, http_inputs("binary", x, datatype="BF16"),
                               [hc.Output("y", binary=False)])
        self.assertHttpError(resp, 400, "BF16")

    # -- HTTP and gRPC ---------------------------------------------------------
    def test_http_and_grpc_bit_identical(self):
        for n, tail in ((1, None), (100, None), (4, (3, 32, 32))):
            x, gy = self.inputs(n, seed=50 + n, x_tail=tail)
            for backward in (False, True):
                g = gy if backward else None
                grpc_out = self.infer_grpc(grpc_request(MODEL, x, g))
                for mode in MODES:
                    with self.subTest(n=n, tail=tail, backward=backward, mode=mode):
                        http_out = self.default_infer(mode, x, g).outputs
                        self.assertBitIdentical(http_out, grpc_out, f"{mode} N={n}")

    # -- NaN and Inf -------------------------------------------------------
    def test_nan_and_infinity_in_json_and_binary_outputs(self):
        x, gy = self.inputs(4, seed=60)
        pre = x.astype(np.float64) @ self.served.state["weight"].numpy().T.astype(np.float64)
        pre += self.served.state["bias"].numpy()
        n, m = np.argwhere(pre > 1e-3)[0]
        x = x.copy()
        x[(n + 1) % 4, 7] = np.nan  # that row of y is NaN
        gy = gy.copy()
        gy[n, m] = np.inf           # passes the select: +Inf in grad_bias[m]
        dead = pre <= -1e-3
        dead[(n + 1) % 4] = False
        gy[dead] = np.nan           # y is 0 there: must not leak
        grpc_out = self.infer_grpc(grpc_request(MODEL, x, gy, ALL))
        self.assertTrue(np.isnan(grpc_out["y"][(n + 1) % 4]).all())
        self.assertEqual(grpc_out["grad_bias"][m], np.inf)
        self.assertTrue(np.isinf(grpc_out["grad_x"][n]).all())
        self.assertTrue((grpc_out["grad_x"][n] < 0).any() and (grpc_out["grad_x"][n] > 0).any())
        for mode in MODES:
            with self.subTest(mode=mode):
                resp = self.http.infer(MODEL, http_inputs("binary", x, gy),
                                       http_outputs(mode, ALL))
                decoded = hc.decode_inference(resp)
                self.assertBitIdentical(decoded.outputs, grpc_out, f"{mode} NaN/Inf",
                                        nan_payload=mode == "binary")
                if mode == "json":
                    for token in (b"NaN", b"Infinity", b"-Infinity"):
                        self.assertIn(token, resp.body)
        # Only where y > 0 does grad_y pass: no NaN from the dead units.
        out = grpc_out
        self.assertEqual(int(np.isnan(out["grad_bias"]).sum()), 0, out["grad_bias"])

    # -- connections -------------------------------------------------------
    def test_one_keep_alive_connection_many_requests(self):
        x, gy = self.inputs(2, seed=70)
        ref = self.served.reference(x, gy)
        with hc.Client(self.http_port) as client:
            for i in range(12):
                mode = MODES[i % 2]
                resp = client.infer(MODEL, http_inputs(mode, x, gy), http_outputs(mode, ALL),
                                    request_id=str(i))
                self.assertNotEqual((resp.header("Connection") or "").lower(), "close", resp)
                decoded = hc.decode_inference(resp)
                self.assertEqual(decoded.header["id"], str(i))
                self.assertAllMatch(decoded.outputs, ref)
                self.assertIsNotNone(client._conn, "the server closed the connection")

    def test_request_compression_as_tritonclient(self):
        # request_compression_algorithm="gzip" / "deflate": Content-Encoding.
        x, gy = self.inputs(2, seed=71)
        ref = self.served.reference(x, gy)
        for compression in ("gzip", "deflate"):
            for mode in MODES:
                with self.subTest(compression=compression, mode=mode):
                    decoded = self.infer_http(MODEL, http_inputs(mode, x, gy),
                                              http_outputs(mode, ALL), mode=mode,
                                              compression=compression)
                    self.assertAllMatch(decoded.outputs, ref)

    def test_expect_100_continue_and_chunked_bodies(self):
        # curl asks for 100 Continue before a body above 1 KiB; a client that
        # streams its body sends it chunked.
        x, gy = self.inputs(2, seed=72)
        ref = self.served.reference(x, gy)
        body, json_size = hc.inference_body(http_inputs("binary", x, gy))
        head = [f"POST {hc.Client.model_path(MODEL)}/infer HTTP/1.1",
                f"Host: {hc.LOOPBACK}:{self.http_port}", f"{hc.HEADER_LENGTH}: {json_size}"]
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4000]), body[i:i + 4000])
                           for i in range(0, len(body), 4000)) + b"0\r\n\r\n"
        for name, fields, payload, expect in (
                ("100-continue", [f"Content-Length: {len(body)}", "Expect: 100-continue"],
                 body, True),
                ("chunked", ["Transfer-Encoding: chunked"], chunked, False)):
            with self.subTest(name):
                status, headers, reply, interim = hc.raw_exchange(
                    self.http_port, "\r\n".join(head + fields), payload,
                    expect_continue=expect)
                self.assertEqual(interim, [100] if expect else [])
                decoded = hc.decode_inference(hc.Response(status, "", headers.items(), reply))
                self.assertEqual(list(decoded.outputs), ALL)
                self.assertAllMatch(decoded.outputs, ref)

    def test_parallel_connections(self):
        cases = [self.inputs(1 + i % 3, seed=80 + i) for i in range(8)]

        def one(i):
            x, gy = cases[i]
            mode = MODES[i % 2]
            with hc.Client(self.http_port) as client:
                return [hc.decode_inference(client.infer(
                    MODEL, http_inputs(mode, x, gy), http_outputs(mode, ALL),
                    request_id=f"{i}.{j}")) for j in range(3)]

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(one, range(len(cases)), timeout=120))
        for i, decoded_list in enumerate(results):
            x, gy = cases[i]
            ref = self.served.reference(x, gy)
            for j, decoded in enumerate(decoded_list):
                self.assertEqual(decoded.header["id"], f"{i}.{j}")
                self.assertAllMatch(decoded.outputs, ref)


if __name__ == "__main__":
    hcom.main()
