#!/usr/bin/python3
"""Interop test of TLS, mutual TLS and token auth on the real
reluserve-server, over real sockets on 127.0.0.1, with Python's own clients
(Debian's python3-grpcio with ssl_channel_credentials; http.client with an
ssl.SSLContext):

- a server with --tls-cert, --tls-key, --tls-client-ca and --auth-token-file
  answers a client with the CA, its client certificate and a token, over
  gRPC (numbers against a float64 reference) and HTTPS (binary tensors),
  and /metrics over HTTPS;
- it refuses, and goes on serving afterwards: a plaintext client, a client
  trusting another CA, a client without a certificate, a client with another
  CA's certificate (all in the handshake), and a call without a token or
  with a wrong one (UNAUTHENTICATED / 401, never UNAVAILABLE / 503);
- grpc.health.v1, ServerLive and /v2/health/ready need no token;
- SIGHUP re-reads the token file: the old token is refused and the new one
  accepted without a restart, and a file emptied by mistake keeps the
  tokens in force;
- start-up refusals: a key that is not the certificate's, a token file with
  no token (exit 1, naming the file), --tls-cert without --tls-key (exit 2).

Certificates come from tests/support/make_test_certs.sh (openssl) at test
time.

- reluserve-client and reluserve-load with --tls-ca, --tls-cert, --tls-key
  and --token-file against it, over gRPC and HTTPS.

    /usr/bin/python3 -B security_test.py --server PATH --client PATH
        --load PATH --stubs DIR [-v]
"""

import sys

sys.dont_write_bytecode = True

import http.client  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import ssl  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import server_process as sp  # noqa: E402

ARGS, LOAD, UNITTEST_ARGV = sp.parse_load_cli(sys.argv)
if ARGS.stubs:
    sys.path.insert(0, os.path.abspath(ARGS.stubs))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_health_v1_pb2 as health_pb  # noqa: E402
import grpc_health_v1_pb2_grpc as health_grpc  # noqa: E402
import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
import http_client as hc  # noqa: E402

MAKE_CERTS = HERE.parent / "support" / "make_test_certs.sh"
RPC_TIMEOUT_S = 10.0
HTTPS_LISTENING_RE = re.compile(r"HTTP/REST listening on https://127\.0\.0\.1:(\d+)")
K, M = 16, 5


def make_certs(directory):
    subprocess.run([str(MAKE_CERTS), directory], check=True, timeout=60)
    return lambda name: os.path.join(directory, name)


def read(path):
    with open(path, "rb") as f:
        return f.read()


class Identity:
    """What a client trusts and shows: CA file (None: plaintext), client
    certificate and key (None: none)."""

    def __init__(self, ca=None, cert=None, key=None):
        self.ca, self.cert, self.key = ca, cert, key

    def grpc_channel(self, target):
        options = [("grpc.enable_http_proxy", 0), ("grpc.use_local_subchannel_pool", 1)]
        if self.ca is None:
            return grpc.insecure_channel(target, options=options)
        credentials = grpc.ssl_channel_credentials(
            read(self.ca), read(self.key) if self.key else None,
            read(self.cert) if self.cert else None)
        return grpc.secure_channel(target, credentials, options=options)

    def https(self, port):
        context = ssl.create_default_context(cafile=self.ca)
        if self.cert:
            context.load_cert_chain(self.cert, self.key)
        return http.client.HTTPSConnection(sp.LOOPBACK, port, timeout=RPC_TIMEOUT_S,
                                           context=context)


def https_request(identity, port, method, path, body=None, headers=None):
    connection = identity.https(port)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return hc.Response(reply.status, reply.reason, reply.getheaders(), reply.read())
    finally:
        connection.close()


class SecureServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="reluserve-security-")
        cls.cert = staticmethod(make_certs(os.path.join(cls.tmp.name, "certs")))
        cls.tokens = os.path.join(cls.tmp.name, "tokens")
        with open(cls.tokens, "w") as f:
            f.write("# test tokens\nfirst-token\n")
        cls.w, cls.b = sp.make_weights(11, K, M)
        weights = os.path.join(cls.tmp.name, "w.safetensors")
        sp.write_linear_weights(weights, cls.w, cls.b, decoys=False)
        cls.metrics_port = sp.free_port()
        cls.server = sp.ServerProcess(ARGS.server, [
            "--weights", weights, "--http-port", str(sp.free_port()),
            "--metrics-port", str(cls.metrics_port),
            "--tls-cert", cls.cert("server.pem"), "--tls-key", cls.cert("server.key"),
            "--tls-client-ca", cls.cert("ca.pem"), "--auth-token-file", cls.tokens])
        try:
            cls.server.start()
            cls.http_port = cls.wait_https_port()
        except BaseException:
            cls.server.stop(expect_code=None)
            cls.tmp.cleanup()
            raise
        cls.good = Identity(cls.cert("ca.pem"), cls.cert("client.pem"), cls.cert("client.key"))

    @classmethod
    def wait_https_port(cls):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = HTTPS_LISTENING_RE.search(cls.server.log())
            if m:
                return int(m.group(1))
            time.sleep(0.05)
        raise AssertionError(f"no HTTPS listening line\n{cls.server.log()}")

    @classmethod
    def tearDownClass(cls):
        sp.stop_class_fixture(cls, 0)  # also removes cls.tmp

    def setUp(self):
        self.assertIsNone(self.server.wait_exit(0), "the server has exited")

    # -- helpers -----------------------------------------------------------
    def infer_request(self, n=3, seed=0):
        x = np.random.default_rng(seed).standard_normal((n, K)).astype(np.float32)
        request = pb.ModelInferRequest(model_name="linear_relu")
        tensor = request.inputs.add(name="x", datatype="FP32", shape=[n, K])
        del tensor
        request.raw_input_contents.append(x.tobytes())
        return request, x

    def grpc_infer(self, identity, token=None):
        request, x = self.infer_request()
        metadata = [("authorization", f"Bearer {token}")] if token else None
        with identity.grpc_channel(self.server.target) as channel:
            reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                request, timeout=RPC_TIMEOUT_S, metadata=metadata)
        y = np.frombuffer(reply.raw_output_contents[0], np.float32).reshape(-1, M)
        return y, x

    def grpc_code(self, identity, token=None):
        try:
            self.grpc_infer(identity, token)
        except grpc.RpcError as e:
            return e.code(), e.details()
        return grpc.StatusCode.OK, ""

    def rest_infer(self, identity, authorization=None):
        x = np.random.default_rng(1).standard_normal((2, K)).astype(np.float32)
        body, header_length = hc.inference_body([hc.Input("x", x)])
        headers = {"Content-Type": "application/octet-stream",
                   hc.HEADER_LENGTH: str(header_length)}
        if authorization:
            headers["Authorization"] = authorization
        return https_request(identity, self.http_port, "POST",
                             "/v2/models/linear_relu/infer", body, headers), x

    def expect_still_serving(self):
        y, x = self.grpc_infer(self.good, "first-token")
        ref, *_ = sp.reference(x, self.w, self.b)
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)

    # -- tests -------------------------------------------------------------
    def test_the_right_client_gets_answers_on_every_listener(self):
        y, x = self.grpc_infer(self.good, "first-token")
        ref, *_ = sp.reference(x, self.w, self.b)
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
        reply, x = self.rest_infer(self.good, "Bearer first-token")
        decoded = hc.decode_inference(reply)
        ref, *_ = sp.reference(x, self.w, self.b)
        np.testing.assert_allclose(decoded.outputs["y"].reshape(ref.shape), ref,
                                   rtol=1e-5, atol=1e-6)
        metrics = https_request(self.good, self.metrics_port, "GET", "/metrics")
        self.assertEqual(metrics.status, 200)
        self.assertIn(b"nv_inference_request_success", metrics.body)

    def test_clients_the_handshake_refuses(self):
        refused = {
            "plaintext": Identity(),
            "trusting another CA": Identity(self.cert("other-ca.pem"),
                                            self.cert("client.pem"), self.cert("client.key")),
            "no client certificate": Identity(self.cert("ca.pem")),
            "another CA's client certificate": Identity(
                self.cert("ca.pem"), self.cert("other-client.pem"),
                self.cert("other-client.key")),
        }
        for name, identity in refused.items():
            with self.subTest(client=name, protocol="grpc"):
                code, details = self.grpc_code(identity, "first-token")
                self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, details)
            if identity.ca is None:
                continue  # http.client cannot speak plaintext to an HTTPS port
            with self.subTest(client=name, protocol="https"):
                with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                    https_request(identity, self.http_port, "GET", "/v2/health/ready")
        with self.subTest(client="plaintext", protocol="http"):
            with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
                hc.Client(self.http_port).get("/v2/health/ready", retry=False)
        self.expect_still_serving()

    def test_calls_without_a_good_token_are_unauthenticated(self):
        for token, says in ((None, "missing 'authorization: Bearer <token>'"),
                            ("wrong-token", "not one of the server's")):
            with self.subTest(token=token, protocol="grpc"):
                code, details = self.grpc_code(self.good, token)
                self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED, details)
                self.assertIn(says, details)
            with self.subTest(token=token, protocol="https"):
                reply, _ = self.rest_infer(self.good, token and f"Bearer {token}")
                self.assertEqual(reply.status, 401, reply)
                self.assertIn(says, reply.json()["error"])
                self.assertEqual(reply.header("WWW-Authenticate"), 'Bearer realm="reluserve"')
        self.expect_still_serving()

    def test_probes_need_no_token(self):
        with self.good.grpc_channel(self.server.target) as channel:
            health = health_grpc.HealthStub(channel).Check(
                health_pb.HealthCheckRequest(), timeout=RPC_TIMEOUT_S)
            self.assertEqual(health.status, health_pb.HealthCheckResponse.SERVING)
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            self.assertTrue(stub.ServerLive(pb.ServerLiveRequest(),
                                            timeout=RPC_TIMEOUT_S).live)
            self.assertTrue(stub.ServerReady(pb.ServerReadyRequest(),
                                             timeout=RPC_TIMEOUT_S).ready)
        for path in ("/v2/health/live", "/v2/health/ready"):
            self.assertEqual(https_request(self.good, self.http_port, "GET", path).status,
                             200, path)

    def test_reluserve_client_and_load_with_tls_and_a_token(self):
        token_file = os.path.join(self.tmp.name, "client-token")
        with open(token_file, "w") as f:
            f.write("first-token\n")
        flags = ["--tls-ca", self.cert("ca.pem"), "--tls-cert", self.cert("client.pem"),
                 "--tls-key", self.cert("client.key"), "--token-file", token_file]
        targets = {"grpc": self.server.target, "http": f"{sp.LOOPBACK}:{self.http_port}"}
        for protocol, target in targets.items():
            with self.subTest(protocol=protocol, binary="reluserve-client"):
                done = subprocess.run(
                    [ARGS.client, "infer", "--protocol", protocol, "--target", target,
                     "--batch", "3", "--grad", *flags],
                    capture_output=True, text=True, timeout=120, env=sp.loopback_env())
                self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
                self.assertIn("grad_weight", done.stdout)
                refused = subprocess.run(
                    [ARGS.client, "infer", "--protocol", protocol, "--target", target,
                     "--batch", "3", *flags[:6]],
                    capture_output=True, text=True, timeout=120, env=sp.loopback_env())
                self.assertNotEqual(refused.returncode, 0, refused.stdout)
                self.assertIn("UNAUTHENTICATED", refused.stdout + refused.stderr)
            with self.subTest(protocol=protocol, binary="reluserve-load"):
                done = subprocess.run(
                    [LOAD, "--protocol", protocol, "--target", target, "--concurrency", "2",
                     "--requests", "40", "--batch", "4", "--quiet", *flags],
                    capture_output=True, text=True, timeout=180, env=sp.loopback_env())
                self.assertEqual(done.returncode, 0, done.stdout + done.stderr)

    def test_sighup_rotates_the_tokens(self):
        try:
            with open(self.tokens, "w") as f:
                f.write("rotated-token\n")
            self.server.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while (self.grpc_code(self.good, "first-token")[0] == grpc.StatusCode.OK
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            self.assertEqual(self.grpc_code(self.good, "first-token")[0],
                             grpc.StatusCode.UNAUTHENTICATED)
            self.assertEqual(self.grpc_code(self.good, "rotated-token")[0],
                             grpc.StatusCode.OK)
            reply, _ = self.rest_infer(self.good, "Bearer rotated-token")
            self.assertEqual(reply.status, 200, reply)
            # Emptied by mistake: the rotated token stays in force.
            with open(self.tokens, "w") as f:
                f.write("# nothing\n")
            self.server.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while ("previous tokens stay in force" not in self.server.log()
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            self.assertIn("previous tokens stay in force", self.server.log())
            self.assertEqual(self.grpc_code(self.good, "rotated-token")[0],
                             grpc.StatusCode.OK)
        finally:
            with open(self.tokens, "w") as f:
                f.write("first-token\n")
            self.server.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while (self.grpc_code(self.good, "first-token")[0] != grpc.StatusCode.OK
                   and time.monotonic() < deadline):
                time.sleep(0.05)
        self.expect_still_serving()


class StartupRefusalTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="reluserve-security-start-")
        cls.cert = staticmethod(make_certs(os.path.join(cls.tmp.name, "certs")))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_server(self, *args):
        argv = [ARGS.server, "--port", "0", "--http-port", "0", "--metrics-port", "0", *args]
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60, env=sp.loopback_env())
        return done.returncode, done.stdout + done.stderr

    def test_a_key_that_is_not_the_certificates(self):
        code, output = self.run_server("--tls-cert", self.cert("server.pem"),
                                       "--tls-key", self.cert("other-server.key"))
        self.assertEqual(code, 1, output)
        self.assertIn(self.cert("other-server.key"), output)
        self.assertIn("is not the key of --tls-cert", output)
        self.assertNotIn("listening on", output)

    def test_a_token_file_without_a_token(self):
        empty = os.path.join(self.tmp.name, "empty-tokens")
        with open(empty, "w") as f:
            f.write("# no token yet\n\n")
        code, output = self.run_server("--auth-token-file", empty)
        self.assertEqual(code, 1, output)
        self.assertIn(empty, output)
        self.assertIn("holds no token", output)

    def test_a_certificate_without_its_key(self):
        code, output = self.run_server("--tls-cert", self.cert("server.pem"))
        self.assertEqual(code, 2, output)
        self.assertIn("--tls-key", output)

    def test_a_client_ca_without_a_certificate(self):
        code, output = self.run_server("--tls-client-ca", self.cert("ca.pem"))
        self.assertEqual(code, 2, output)
        self.assertIn("--tls-cert", output)


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
