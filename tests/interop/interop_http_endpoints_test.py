#!/usr/bin/python3
"""Interop test, HTTP/REST endpoints and refusals: the server with no
weights at all (the default model linear_relu, K = 3072, M = 100, He
initialised), --max-batch 64, answering on its --http-port as tritonclient.http
sees it (http_client.py), each answer compared with the same question over
gRPC:

- GET /v2/health/live and /ready, GET /v2 (extensions, binary_tensor_data
  among them), model metadata, model readiness, Triton's model config (as
  JSON, parsed into model_config.proto's ModelConfig), statistics (which grow
  after an infer, as gRPC's do), POST /v2/repository/index (with no body, as
  tritonclient sends it, and with {"ready": ...});
- the HTTP twins of the gRPC suite's malformed requests (tests/service's
  MalformedRequestsGetTheContractStatus, interop_inference_test.py), in
  binary and JSON form: status 400 or 404, an {"error": "..."} body naming
  the tensor and what was expected; the REST-only ones (malformed JSON, bad
  Inference-Header-Content-Length, bytes beyond the binary inputs, BF16 in
  JSON), 413 above the size limit; the server serves on after each;
- the drain: after SIGTERM /v2/health/ready answers 503 (or the port closes),
  never 200.

    /usr/bin/python3 -B interop_http_endpoints_test.py --server PATH --stubs DIR [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import pathlib  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# First: parses the command line and puts the stubs on sys.path.
import http_common as hcom  # noqa: E402

import http.client  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from google.protobuf import json_format  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import http_client as hc  # noqa: E402
import model_config_pb2 as mc_pb  # noqa: E402
from http_common import DEFAULT_MODEL as MODEL, MODES, RPC_TIMEOUT_S  # noqa: E402

K, M = 3072, 100
MAX_BATCH = 64
INFER = hc.Client.model_path(MODEL) + "/infer"


def random_pair(n=2, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, K)).astype(np.float32),
            rng.standard_normal((n, M)).astype(np.float32))


def stats_entry(body, name=MODEL, version="1"):
    entries = [s for s in body["model_stats"] if (s["name"], s["version"]) == (name, version)]
    if len(entries) != 1:
        raise AssertionError(f"{(name, version)}: {len(entries)} entries in {body}")
    return entries[0]


class DefaultServerHttpTest(hcom.HttpTestCase):
    @classmethod
    def setUpClass(cls):
        cls.start_class_server("reluserve-http-endpoints-",
                               lambda tmp: ["--max-batch", MAX_BATCH])

    # -- health, server, model ---------------------------------------------
    def test_health_live_and_ready(self):
        for path in ("/v2/health/live", "/v2/health/ready"):
            with self.subTest(path=path):
                resp = self.http.get(path)
                self.assertEqual(resp.status, 200, repr(resp))

    def test_server_metadata(self):
        body = self.get_json("/v2")
        grpc_md = self.stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=RPC_TIMEOUT_S)
        self.assertEqual(body["name"], grpc_md.name)
        self.assertEqual(body["version"], grpc_md.version)
        self.assertTrue(body["version"])
        self.assertIsInstance(body["extensions"], list)
        self.assertIn("binary_tensor_data", body["extensions"])
        for ext in grpc_md.extensions:
            self.assertIn(ext, body["extensions"])

    def test_model_metadata(self):
        want_inputs = [{"name": "x", "datatype": "FP32", "shape": [-1, K]},
                       {"name": "grad_y", "datatype": "FP32", "shape": [-1, M]}]
        want_outputs = [{"name": "y", "datatype": "FP32", "shape": [-1, M]},
                        {"name": "grad_x", "datatype": "FP32", "shape": [-1, K]},
                        {"name": "grad_weight", "datatype": "FP32", "shape": [M, K]},
                        {"name": "grad_bias", "datatype": "FP32", "shape": [M]}]
        grpc_md = self.stub.ModelMetadata(pb.ModelMetadataRequest(name=MODEL),
                                          timeout=RPC_TIMEOUT_S)
        for version in ("", "1"):
            with self.subTest(version=version):
                body = self.get_json(hc.Client.model_path(MODEL, version))
                self.assertEqual(body["name"], MODEL)
                self.assertEqual(body["versions"], ["1"])
                self.assertEqual(body["platform"], hcom.PLATFORM)
                self.assertEqual(body["inputs"], want_inputs)
                self.assertEqual(body["outputs"], want_outputs)
                self.assertEqual(body["platform"], grpc_md.platform)
                self.assertEqual(body["versions"], list(grpc_md.versions))
                self.assertEqual([(t["name"], t["shape"]) for t in body["outputs"]],
                                 [(t.name, list(t.shape)) for t in grpc_md.outputs])
        for path, fragment in ((hc.Client.model_path("resnet50"), "resnet50"),
                               (hc.Client.model_path(MODEL, "2"), "'2'")):
            with self.subTest(path=path):
                self.assertHttpError(self.http.get(path), 404, fragment)

    def test_model_ready(self):
        for version in ("", "1"):
            resp = self.http.get(hc.Client.model_path(MODEL, version) + "/ready")
            self.assertEqual(resp.status, 200, repr(resp))
        for model, version in (("resnet50", ""), (MODEL, "2"), (MODEL, "01")):
            with self.subTest(model=model, version=version):
                resp = self.http.get(hc.Client.model_path(model, version) + "/ready")
                self.assertNotEqual(resp.status, 200, repr(resp))
                self.assertGreaterEqual(resp.status, 400, repr(resp))

    def test_model_config(self):
        grpc_config = self.stub.ModelConfig(pb.ModelConfigRequest(name=MODEL),
                                            timeout=RPC_TIMEOUT_S).config
        for version in ("", "1"):
            with self.subTest(version=version):
                body = self.get_json(hc.Client.model_path(MODEL, version) + "/config")
                # Triton's JSON: proto field names, enums by name, int64 as numbers.
                self.assertEqual(body["name"], MODEL)
                self.assertEqual(body["max_batch_size"], MAX_BATCH)
                self.assertEqual([(t["name"], t["data_type"], t["dims"]) for t in body["input"]],
                                 [("x", "TYPE_FP32", [K]), ("grad_y", "TYPE_FP32", [M])])
                self.assertTrue(all(type(d) is int for t in body["input"] + body["output"]
                                    for d in t["dims"]), "dims must be JSON numbers")
                self.assertIs(body["input"][1].get("optional"), True)
                self.assertEqual([t["name"] for t in body["output"]],
                                 ["y", "grad_x", "grad_weight", "grad_bias"])
                parsed = json_format.ParseDict(body, mc_pb.ModelConfig())
                self.assertEqual(parsed, grpc_config,
                                 "the HTTP config must be the gRPC ModelConfig as JSON")
        self.assertHttpError(self.http.get(hc.Client.model_path("resnet50") + "/config"),
                             404, "resnet50")

    def test_statistics_grow_after_an_infer_as_over_grpc(self):
        paths = ("/v2/models/stats", hc.Client.model_path(MODEL) + "/stats",
                 hc.Client.model_path(MODEL, "1") + "/stats")
        for path in paths:
            body = self.get_json(path)
            self.assertEqual([(s["name"], s["version"]) for s in body["model_stats"]],
                             [(MODEL, "1")], path)
        before = stats_entry(self.get_json(paths[1]))
        x, gy = random_pair(3, seed=5)
        for mode in MODES:
            resp = self.http.infer(MODEL, hcom.http_inputs(mode, x, gy),
                                   hcom.http_outputs(mode, ["y", "grad_bias"]))
            self.assertEqual(resp.status, 200, repr(resp))
        resp = self.http.infer(MODEL, hcom.http_inputs("binary", x[:2]))
        self.assertEqual(resp.status, 200, repr(resp))
        after = stats_entry(self.get_json(paths[2]))
        self.assertEqual(after["inference_count"] - before["inference_count"], 3 + 3 + 2)
        self.assertEqual(after["execution_count"] - before["execution_count"], 3)
        s_b, s_a = before["inference_stats"], after["inference_stats"]
        self.assertEqual(s_a["success"]["count"] - s_b["success"]["count"], 3)
        self.assertGreater(s_a["success"]["ns"], s_b["success"]["ns"])
        self.assertEqual(s_a["fail"]["count"], s_b["fail"]["count"])
        self.assertEqual(s_a["compute_input"]["count"], s_a["compute_infer"]["count"])
        self.assertEqual(s_a["compute_infer"]["count"], s_a["compute_output"]["count"])
        self.assertGreaterEqual(after["last_inference"], before["last_inference"])
        self.assertGreater(after["last_inference"], 1_600_000_000_000, "ms since the epoch")
        for key in ("inference_count", "execution_count", "last_inference"):
            self.assertIs(type(after[key]), int, f"{key} must be a JSON number")
        # Nothing in between: gRPC's numbers are the same.
        grpc_s = self.stub.ModelStatistics(pb.ModelStatisticsRequest(name=MODEL),
                                           timeout=RPC_TIMEOUT_S).model_stats[0]
        self.assertEqual((after["inference_count"], after["execution_count"],
                          after["last_inference"]),
                         (grpc_s.inference_count, grpc_s.execution_count,
                          grpc_s.last_inference))
        for part in ("success", "fail", "queue", "compute_input", "compute_infer",
                     "compute_output"):
            got = s_a[part]
            want = getattr(grpc_s.inference_stats, part)
            self.assertEqual((got["count"], got["ns"]), (want.count, want.ns), part)
        self.assertHttpError(self.http.get(hc.Client.model_path("resnet50") + "/stats"),
                             404, "resnet50")

    def test_failed_infer_counts_as_over_grpc(self):
        def fails():
            s = self.stub.ModelStatistics(pb.ModelStatisticsRequest(name=MODEL),
                                          timeout=RPC_TIMEOUT_S).model_stats[0]
            return s.inference_stats.fail.count

        x, _ = random_pair(2, seed=6)
        bad = hcom.grpc_request(MODEL, x, outputs=["grad_x"])  # no grad_y
        start = fails()
        with self.assertRaises(Exception):
            self.stub.ModelInfer(bad, timeout=RPC_TIMEOUT_S)
        grpc_delta = fails() - start
        start = fails()
        resp = self.http.infer(MODEL, hcom.http_inputs("binary", x), [hc.Output("grad_x")])
        self.assertHttpError(resp, 400, "grad_y")
        self.assertEqual(fails() - start, grpc_delta, "HTTP and gRPC count a refusal alike")

    def test_repository_index(self):
        grpc_index = self.stub.RepositoryIndex(pb.RepositoryIndexRequest(),
                                               timeout=RPC_TIMEOUT_S)
        want = [{"name": m.name, "version": m.version, "state": m.state}
                for m in grpc_index.models]
        self.assertEqual(want, [{"name": MODEL, "version": "1", "state": "READY"}])
        for ready in (None, True, False):
            with self.subTest(ready=ready):
                resp = self.http.repository_index(ready)
                self.assertEqual(resp.status, 200, repr(resp))
                body = resp.json()
                self.assertEqual([{k: e.get(k) for k in ("name", "version", "state")}
                                  for e in body], want)
        resp = self.http.post("/v2/repository/index", b"{}",
                              {"Content-Type": "application/json"})
        self.assertEqual(resp.status, 200, repr(resp))

    def test_unknown_paths_and_methods(self):
        for method, path in (("GET", "/v2/nothing"), ("GET", "/v3"), ("GET", "/"),
                             ("GET", INFER), ("POST", "/v2/health/live"),
                             ("POST", "/v2/models/stats"),
                             ("DELETE", hc.Client.model_path(MODEL))):
            with self.subTest(method=method, path=path):
                resp = self.http.request(method, path, headers={"Content-Length": "0"})
                self.assertIn(resp.status, (404, 405), repr(resp))
                self.assertHttpError(resp, resp.status, method, path)
        self.assertEqual(self.http.get("/v2/health/live").status, 200)

    # -- malformed requests: the gRPC suite's twins ------------------------
    def check_refusal(self, inputs, outputs=None, status=400, fragments=(), path=None,
                      **kwargs):
        if path is None:
            resp = self.http.infer(MODEL, inputs, outputs, **kwargs)
        else:
            body, json_size = hc.inference_body(inputs, outputs)
            headers = {hc.HEADER_LENGTH: json_size} if json_size is not None else {}
            resp = self.http.post(path, body, headers)
        message = self.assertHttpError(resp, status, *fragments)
        self.assertIsNone(resp.header(hc.HEADER_LENGTH), "an error has no binary section")
        return message

    def test_malformed_requests_get_the_contract_status(self):
        x, gy = random_pair(2, seed=7)
        x3 = np.ones((3, K), np.float32)
        big = np.zeros((MAX_BATCH + 1, K), np.float32)

        def both(mode, **changes):
            """x and grad_y, with changes: name -> Input kwargs overrides."""
            out = []
            for name, array in (("x", x), ("grad_y", gy)):
                kw = {"binary": mode == "binary"}
                kw.update(changes.get(name, {}))
                if kw.pop("drop", False):
                    continue
                out.append(hc.Input(kw.pop("name", name), kw.pop("array", array), **kw))
            return out

        cases = [
            # (name, inputs(mode), outputs, status, fragments, url path)
            ("unknown model", lambda m: both(m), None, 404, ["resnet50", MODEL],
             hc.Client.model_path("resnet50") + "/infer"),
            ("unknown version", lambda m: both(m), None, 404, ["'3'", "version 1"],
             hc.Client.model_path(MODEL, "3") + "/infer"),
            ("missing x", lambda m: both(m, x={"drop": True}), None, 400,
             ["missing input 'x'", f"[N, {K}]"], None),
            ("unknown input", lambda m: both(m, grad_y={"name": "z"}), None, 400,
             ["'z'", "grad_y"], None),
            ("unknown output", lambda m: both(m), ["logits"], 400,
             ["'logits'", "grad_weight"], None),
            ("wrong datatype FP16", lambda m: both(m, x={"datatype": "FP16"}), None, 400,
             ["'x'", "FP32", "FP16"], None),
            ("wrong datatype FP64", lambda m: both(m, x={"datatype": "FP64"}), None, 400,
             ["'x'", "FP32", "FP64"], None),
            ("wrong rank", lambda m: both(m, x={"array": x[0]}), None, 400,
             ["'x'", f"[N, {K}]", f"[{K}]"], None),
            ("wrong features", lambda m: both(m, x={"array": x[:, :K - 1]}), None, 400,
             ["'x'", str(K), f"[2, {K - 1}]"], None),
            ("wrong grad_y shape", lambda m: both(m, grad_y={"array": gy[:, :M - 1]}), None,
             400, ["'grad_y'", f"[2, {M}]", f"[2, {M - 1}]"], None),
            ("N = 0", lambda m: both(m, x={"array": x[:0]}, grad_y={"drop": True}), None, 400,
             ["'x'", "N >= 1", f"[0, {K}]"], None),
            ("negative dimension", lambda m: both(m, x={"shape": [-2, K]}), None, 400,
             ["'x'", "non-negative", "-2"], None),
            ("shape overflow", lambda m: both(m, x={"shape": [1 << 40, 1 << 40]}), None, 400,
             ["'x'", "overflows"], None),
            ("gradient without grad_y", lambda m: both(m, grad_y={"drop": True}), ["grad_x"],
             400, ["'grad_x'", "'grad_y'"], None),
            ("duplicate input", lambda m: both(m, grad_y={"name": "x", "array": x}), None, 400,
             ["'x'", "twice"], None),
            ("duplicate output", lambda m: both(m), ["y", "y"], 400, ["'y'", "twice"], None),
            ("batch above maximum",
             lambda m: both(m, x={"array": big}, grad_y={"drop": True}), None, 400,
             [str(MAX_BATCH + 1), "maximum", str(MAX_BATCH)], None),
            ("grad_y rows differ from x's",
             lambda m: both(m, x={"array": x3}), None, 400, ["'grad_y'", "[3, 100]"], None),
        ]
        for name, make_inputs, outputs, status, fragments, path in cases:
            for mode in MODES:
                with self.subTest(case=name, mode=mode):
                    outs = hcom.http_outputs(mode, outputs) if outputs else None
                    self.check_refusal(make_inputs(mode), outs, status, fragments, path)
        self.assertServesOn()

    def test_byte_and_value_counts(self):
        x, _ = random_pair(2, seed=8)
        raw = hc.tensor_bytes(x, "FP32")
        # gRPC's "byte count": binary_data_size and bytes one value short.
        self.check_refusal([hc.Input("x", x, raw=raw[:-4])],
                           fragments=["'x'", f"{2 * K * 4} bytes", str(2 * K * 4 - 4)])
        # The JSON twin: one value short of the shape.
        self.check_refusal([hc.Input("x", x, binary=False,
                                     data=[v.item() for v in x.ravel()[:-1]])],
                           fragments=["'x'", str(2 * K)])
        # Nested data that is ragged, or of another shape than "shape".
        nested = x.tolist()
        nested[1] = nested[1][:-1]
        self.check_refusal([hc.Input("x", x, binary=False, data=nested)], fragments=["'x'"])
        self.check_refusal([hc.Input("x", x, binary=False, shape=[1, 2 * K],
                                     data=x.tolist())], fragments=["'x'"])
        # Values that are no numbers (gRPC's "typed field of another datatype").
        for bad in ("1.5", True, None, {"v": 1}):
            with self.subTest(value=bad):
                data = [v.item() for v in x.ravel()]
                data[5] = bad
                self.check_refusal([hc.Input("x", x, binary=False, data=data)],
                                   fragments=["'x'"])
        # Both forms on one input ("raw and typed mixed").
        head = hc.dumps({"inputs": [{"name": "x", "shape": [2, K], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)},
                                     "data": [v.item() for v in x.ravel()]}]}).encode()
        resp = self.http.post(INFER, head + raw, {hc.HEADER_LENGTH: len(head)})
        self.assertHttpError(resp, 400, "'x'")
        self.assertServesOn()

    def test_binary_section_framing(self):
        x, gy = random_pair(2, seed=9)
        inputs = hcom.http_inputs("binary", x, gy)
        body, json_size = hc.inference_body(inputs)
        cases = [
            ("bytes beyond the declared inputs", body + b"\0" * 8, json_size, []),
            ("grad_y's bytes missing", body[:-(2 * M * 4)], json_size, ["grad_y"]),
            ("half of grad_y's bytes", body[:-(M * 4)], json_size, ["grad_y"]),
            ("header length beyond the body", body, len(body) + 1, []),
            ("header length inside the JSON", body, json_size - 5, []),
            ("binary inputs without header length", body, None, []),
        ]
        for name, payload, length, fragments in cases:
            with self.subTest(case=name):
                headers = {} if length is None else {hc.HEADER_LENGTH: length}
                resp = self.http.post(INFER, payload, headers)
                self.assertHttpError(resp, 400, *fragments)
        for size in (-4, 1.5, "24576", None):
            with self.subTest(binary_data_size=size):
                bad = hc.Input("x", x, parameters={"binary_data_size": size})
                self.check_refusal([bad], fragments=["'x'"])
        self.assertServesOn()

    def test_refusals_before_the_body_leave_the_connection_in_step(self):
        # A refusal decided on the header fields alone must still take the
        # body off the connection (or close it): otherwise its bytes are read
        # as the next requests, and a keep-alive client such as tritonclient's
        # gets their 400s as the answers to its next calls. Fresh connections,
        # a few times each: how much of the body has arrived varies.
        x, gy = random_pair(2, seed=13)
        body, json_size = hc.inference_body(hcom.http_inputs("binary", x, gy))
        for length in ("twelve", -1, json_size):
            for attempt in range(4):
                with self.subTest(header_length=length, attempt=attempt), \
                        hc.Client(self.http_port) as client:
                    self.assertEqual(client.get("/v2/health/live").status, 200)
                    resp = client.post(INFER, body, {hc.HEADER_LENGTH: length,
                                                     "Content-Type": "text/plain"})
                    if length == json_size:
                        self.assertEqual(resp.status, 200, repr(resp))
                    else:
                        self.assertHttpError(resp, 400, hc.HEADER_LENGTH, in_sync=False)
                    if (resp.header("Connection") or "").lower() == "close":
                        continue
                    try:
                        after = client.get("/v2/health/live", retry=False)
                    except (OSError, http.client.HTTPException) as e:
                        self.fail(f"after {resp!r}: {e!r}")
                    self.assertEqual(after.status, 200,
                                     f"after {resp!r} the connection answered {after!r}")

    def test_a_post_without_content_length_has_an_empty_body(self):
        # curl -X POST sends neither Content-Length nor a body; such a body is
        # empty (RFC 9112, 6.3), so the answer is due at once. (tritonclient
        # does so for the repository index, test_repository_index.)
        for path, statuses in ((INFER, (400,)), ("/v2/repository/index", (200,)),
                               ("/v2/health/live", (404, 405))):
            with self.subTest(path=path):
                start = time.monotonic()
                resp = self.http.post(path)
                elapsed = time.monotonic() - start
                self.assertIn(resp.status, statuses, repr(resp))
                self.assertLess(elapsed, 2.0, f"POST {path} with no body took {elapsed:.1f} s "
                                f"to answer {resp!r}")
                if resp.status != 200:
                    self.assertHttpError(resp, resp.status)

    def test_malformed_json(self):
        x, _ = random_pair(1, seed=10)
        good = hc.inference_body(hcom.http_inputs("json", x), tritonclient=False)[0]
        bodies = [
            ("truncated", good[:len(good) // 2], []),
            ("not JSON", b"hello", []),
            ("an array", b"[]", []),
            ("a string", b'"x"', []),
            ("empty", b"", []),  # (Content-Length: 0 below)
            ("no inputs", b'{"id": "1"}', ["inputs"]),
            ("inputs not a list", b'{"inputs": {"name": "x"}}', ["inputs"]),
            ("input without name", hc.dumps({"inputs": [{"datatype": "FP32", "shape": [1, K],
                                                         "data": [0.0] * K}]}).encode(), []),
            ("shape not a list", hc.dumps({"inputs": [{"name": "x", "datatype": "FP32",
                                                       "shape": K, "data": [0.0] * K}]}
                                          ).encode(), ["'x'"]),
            ("shape of strings", hc.dumps({"inputs": [{"name": "x", "datatype": "FP32",
                                                       "shape": ["1", str(K)],
                                                       "data": [0.0] * K}]}).encode(), ["'x'"]),
            ("no data and no binary_data_size",
             hc.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, K]}]}
                      ).encode(), ["'x'"]),
            ("trailing garbage", good + b" }", []),
            ("outputs not a list", good[:-1] + b',"outputs":"y"}', ["outputs"]),
        ]
        for name, body, fragments in bodies:
            with self.subTest(case=name):
                resp = self.http.post(INFER, body, {"Content-Type": "application/json",
                                                    "Content-Length": str(len(body))})
                self.assertHttpError(resp, 400, *fragments)
        self.assertServesOn()

    def test_body_above_the_limit_is_413(self):
        # The receive limit is max_batch·(K+M)·4 bytes + 1 MiB; this x is above it.
        n = 200
        self.assertGreater(n * K * 4, MAX_BATCH * (K + M) * 4 + (1 << 20))
        x = np.zeros((n, K), np.float32)
        body, json_size = hc.inference_body([hc.Input("x", x)])
        head = "\r\n".join([f"POST {INFER} HTTP/1.1", f"Host: {hc.LOOPBACK}:{self.http_port}",
                             f"User-Agent: {hc.USER_AGENT}", f"Content-Length: {len(body)}",
                             f"{hc.HEADER_LENGTH}: {json_size}"])
        status, _, text, _ = hc.raw_exchange(self.http_port, head, body)
        self.assertEqual(status, 413, text[:300])
        self.assertIn("limit", hc.Response(status, "", [], text).json()["error"])
        self.assertServesOn()

    def assertServesOn(self):
        self.assertEqual(self.http.get("/v2/health/ready").status, 200)
        x, gy = random_pair(1, seed=11)
        resp = self.http.infer(MODEL, hcom.http_inputs("binary", x, gy))
        decoded = hc.decode_inference(resp)
        self.assertEqual(list(decoded.outputs), ["y", "grad_x", "grad_weight", "grad_bias"])


class DrainHttpTest(hcom.HttpTestCase):
    """After SIGTERM: ready 503 (or the port gone), infer 503, live 200
    while the port is open; never ready 200 again."""

    @classmethod
    def setUpClass(cls):
        cls.start_class_server("reluserve-http-drain-", lambda tmp: [])

    def test_ready_turns_503_while_draining(self):
        self.assertEqual(self.http.get("/v2/health/ready").status, 200)
        x, _ = random_pair(1, seed=12)
        self.server.send_signal(signal.SIGTERM)
        seen = []
        infer_status = None
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and len(seen) < 400:
            try:
                with hc.Client(self.http_port, timeout=2.0) as client:
                    seen.append(client.get("/v2/health/ready").status)
                    if seen[-1] == 503 and infer_status is None:
                        resp = client.infer(MODEL, hcom.http_inputs("binary", x))
                        infer_status = resp.status
                        if resp.status == 503:
                            self.assertHttpError(resp, 503, in_sync=False)
            except OSError:
                seen.append("closed")
                break
            time.sleep(0.01)
        # The first probes may beat the signal's handling; after the first
        # refusal, never 200 again.
        first = next((i for i, s in enumerate(seen) if s != 200), len(seen))
        self.assertNotIn(200, seen[first:], f"ready answered 200 while draining: {seen}")
        self.assertIn(503, seen, f"no 503 from /v2/health/ready while draining: {seen}")
        self.assertIn(infer_status, (503, None), "an infer while draining")
        self.assertIsNotNone(self.server.wait_exit(20.0), "the server did not exit")
        self.assertEqual(self.server.returncode, 0, self.server.log())


if __name__ == "__main__":
    hcom.main()
