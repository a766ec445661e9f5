#!/usr/bin/python3
"""reluserve-client and reluserve-load take --tls-ca, --tls-cert, --tls-key
and --token-file: refusals of flags that do not go together (exit 2) and of
files that cannot be used (exit 1, naming the flag and the path); then
reluserve-client health with TLS, mutual TLS and a token against small
Python servers on 127.0.0.1 (grpcio's TLS server, an HTTPS server from the
standard library) that record the authorization each call carried.
Certificates come from tests/support/make_test_certs.sh, made at test time.

    /usr/bin/python3 -B cli_security_test.py --client PATH --load PATH [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import argparse  # noqa: E402
import concurrent.futures  # noqa: E402
import http.server  # noqa: E402
import pathlib  # noqa: E402
import ssl  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import unittest  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import server_process as sp  # noqa: E402

import grpc  # noqa: E402

TIMEOUT_S = 60.0
EXIT_USAGE = 2
EXIT_FAILED = 1
EXIT_UNREACHABLE = 4
TOKEN = "cli-token-42"
MAKE_CERTS = HERE.parent / "support" / "make_test_certs.sh"
# ServerLiveResponse / ServerReadyResponse / ModelReadyResponse with their
# one bool field (1) true.
TRUE_REPLY = b"\x08\x01"


def parse_args(argv):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--client", required=True)
    p.add_argument("--load", required=True)
    args, rest = p.parse_known_args(argv[1:])
    return args, [argv[0], *rest]


ARGS, UNITTEST_ARGV = parse_args(sys.argv)


def run(argv):
    return subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=TIMEOUT_S,
                          env=sp.loopback_env())


class GrpcHealthServer:
    """ServerLive, ServerReady and ModelReady, all true, over TLS (mutual
    with `client_ca`); `seen` holds each call's authorization values."""

    def __init__(self, certs, client_ca=None):
        self.seen = []
        self._lock = threading.Lock()
        handlers = {name: grpc.unary_unary_rpc_method_handler(self._answer)
                    for name in ("ServerLive", "ServerReady", "ModelReady")}
        self._server = grpc.server(
            concurrent.futures.ThreadPoolExecutor(max_workers=2))
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "inference.GRPCInferenceService", handlers),))
        credentials = grpc.ssl_server_credentials(
            [((certs / "server.key").read_bytes(),
              (certs / "server.pem").read_bytes())],
            root_certificates=(certs / client_ca).read_bytes() if client_ca else None,
            require_client_auth=client_ca is not None)
        self.port = self._server.add_secure_port(f"{sp.LOOPBACK}:0", credentials)
        self._server.start()

    def _answer(self, _request, context):
        values = [value for key, value in context.invocation_metadata()
                  if key == "authorization"]
        with self._lock:
            self.seen.append(values)
        return TRUE_REPLY

    def stop(self):
        self._server.stop(grace=None)


class HttpsHealthServer:
    """GET /v2/health/* and /v2/models/<m>/ready: 200, over TLS (mutual with
    `client_ca`); `seen` holds each request's Authorization header."""

    def __init__(self, certs, client_ca=None):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's name)
                seen.append(self.headers.get("Authorization", ""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs / "server.pem", certs / "server.key")
        if client_ca:
            context.load_verify_locations(certs / client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        self._httpd = http.server.ThreadingHTTPServer((sp.LOOPBACK, 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.socket = context.wrap_socket(self._httpd.socket,
                                                 server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


class CliSecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.certs = pathlib.Path(cls._tmp.name)
        subprocess.run(["bash", str(MAKE_CERTS), str(cls.certs)], check=True,
                       timeout=TIMEOUT_S)
        cls.token_file = cls.certs / "token"
        cls.token_file.write_text(f"# the client's token\n\n  {TOKEN}  \n")

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def path(self, name):
        return str(self.certs / name)

    def mutual(self):
        return ["--tls-ca", self.path("ca.pem"), "--tls-cert",
                self.path("client.pem"), "--tls-key", self.path("client.key")]

    def both(self, *args, target=f"{sp.LOOPBACK}:1"):
        """(binary name, result) for reluserve-client health and
        reluserve-load with the same flags, against nothing listening."""
        return [
            ("reluserve-client", run([ARGS.client, "health", "--target", target,
                                      "--connect-timeout-ms", 100, *args])),
            ("reluserve-load", run([ARGS.load, "--target", target,
                                    "--connect-timeout-ms", 100, "--requests",
                                    1, "--quiet", *args])),
        ]

    def test_help_lists_the_flags(self):
        for argv in ([ARGS.client, "health", "--help"], [ARGS.load, "--help"]):
            result = run(argv)
            self.assertEqual(result.returncode, 0, result.stderr)
            for flag in ("--tls-ca", "--tls-cert", "--tls-key", "--token-file"):
                self.assertIn(flag, result.stdout)

    def test_certificate_and_key_go_together(self):
        for args in (["--tls-cert", self.path("client.pem")],
                     ["--tls-key", self.path("client.key")]):
            for binary, result in self.both(*args):
                with self.subTest(binary=binary, args=args):
                    self.assertEqual(result.returncode, EXIT_USAGE, result.stderr)
                    self.assertIn(f"{binary}: --tls-cert and --tls-key go "
                                  "together", result.stderr)
                    self.assertIn(f"{binary} --help", result.stderr)

    def test_a_file_that_cannot_be_used_is_named_with_its_flag(self):
        missing = self.path("no-such-file")
        comments = self.certs / "comments-only"
        comments.write_text("# no token here\n\n")
        cases = [
            (["--tls-ca", missing], f"--tls-ca {missing}: cannot open it"),
            (["--tls-ca", self.path("ca.key")],
             f"--tls-ca {self.path('ca.key')}: no PEM certificate in it"),
            (["--tls-ca", self.path("ca.pem"), "--tls-cert",
              self.path("client.pem"), "--tls-key", self.path("other-client.key")],
             f"--tls-key {self.path('other-client.key')}: not the key of the "
             "certificate in"),
            (["--token-file", missing], f"--token-file {missing}: cannot open it"),
            (["--token-file", str(comments)],
             f"--token-file {comments}: no token in it"),
        ]
        for args, message in cases:
            for binary, result in self.both(*args):
                with self.subTest(binary=binary, args=args):
                    self.assertEqual(result.returncode, EXIT_FAILED, result.stderr)
                    self.assertIn(message, result.stderr)

    def test_http_target_with_tls_flags_is_a_usage_error(self):
        for binary, result in self.both("--protocol", "http", "--tls-ca",
                                        self.path("ca.pem"),
                                        target=f"http://{sp.LOOPBACK}:1"):
            with self.subTest(binary=binary):
                self.assertEqual(result.returncode, EXIT_USAGE, result.stderr)
                self.assertIn("write https://HOST:PORT", result.stderr)

    def test_grpc_mutual_tls_with_a_token(self):
        server = GrpcHealthServer(self.certs, client_ca="ca.pem")
        try:
            target = f"{sp.LOOPBACK}:{server.port}"
            result = run([ARGS.client, "health", "--target", target,
                          *self.mutual(), "--token-file", self.token_file])
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("live         true", result.stdout)
            self.assertEqual(server.seen, [[f"Bearer {TOKEN}"]] * 3)
            self.assertNotIn(TOKEN, result.stdout + result.stderr)
            # Without a client certificate: refused, said so.
            result = run([ARGS.client, "health", "--target", target,
                          "--tls-ca", self.path("ca.pem")])
            self.assertIn(result.returncode, (EXIT_FAILED, EXIT_UNREACHABLE),
                          result.stderr)
            self.assertEqual(len(server.seen), 3)
        finally:
            server.stop()

    def test_grpc_server_from_another_ca_is_refused(self):
        server = GrpcHealthServer(self.certs)
        try:
            result = run([ARGS.client, "health", "--target",
                          f"{sp.LOOPBACK}:{server.port}", "--tls-ca",
                          self.path("other-ca.pem"), "--connect-timeout-ms", 3000])
            self.assertEqual(result.returncode, EXIT_UNREACHABLE, result.stderr)
            self.assertIn("certificate verify failed", result.stderr)
            self.assertEqual(server.seen, [])
        finally:
            server.stop()

    def test_https_mutual_tls_with_a_token(self):
        server = HttpsHealthServer(self.certs, client_ca="ca.pem")
        try:
            for target in (f"{sp.LOOPBACK}:{server.port}",
                           f"https://localhost:{server.port}"):
                with self.subTest(target=target):
                    before = len(server.seen)
                    result = run([ARGS.client, "health", "--protocol", "http",
                                  "--target", target, *self.mutual(),
                                  "--token-file", self.token_file])
                    self.assertEqual(result.returncode, 0, result.stderr)
                    self.assertIn("model ready  true", result.stdout)
                    # WaitForConnection's probe, then live, ready, model ready.
                    self.assertEqual(server.seen[before:],
                                     [f"Bearer {TOKEN}"] * 4)
            before = len(server.seen)
            result = run([ARGS.client, "health", "--protocol", "http", "--target",
                          f"{sp.LOOPBACK}:{server.port}", "--tls-ca",
                          self.path("ca.pem"), "--connect-timeout-ms", 3000])
            self.assertEqual(result.returncode, EXIT_UNREACHABLE, result.stderr)
            self.assertIn("TLS", result.stderr)
            self.assertIn("client certificate", result.stderr)
            self.assertEqual(len(server.seen), before)
        finally:
            server.stop()

    def test_https_server_from_another_ca_is_refused(self):
        server = HttpsHealthServer(self.certs)
        try:
            result = run([ARGS.client, "health", "--protocol", "http", "--target",
                          f"https://{sp.LOOPBACK}:{server.port}", "--tls-ca",
                          self.path("other-ca.pem")])
            self.assertEqual(result.returncode, EXIT_UNREACHABLE, result.stderr)
            self.assertIn("the server's certificate did not verify: unable to "
                          "get local issuer certificate", result.stderr)
            self.assertEqual(server.seen, [])
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
