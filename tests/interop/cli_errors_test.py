#!/usr/bin/python3
"""The binaries' errors say what to do, with the documented exit statuses:
usage errors (2), an unreachable server (4), a busy port, a batch above the
server's maximum, --version, --model-name. Against the real reluserve-server
and reluserve-client on 127.0.0.1.

    /usr/bin/python3 -B cli_errors_test.py --server PATH --client PATH [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import os  # noqa: E402
import pathlib  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402

ARGS, UNITTEST_ARGV = sp.parse_cli(sys.argv, need_client=True)

import numpy as np  # noqa: E402

TIMEOUT_S = 60.0
MAX_BATCH = 8
MODEL = "cifar_head"
EXIT_USAGE = 2
EXIT_UNREACHABLE = 4


def run(argv, timeout=TIMEOUT_S):
    return subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout,
                          env=sp.loopback_env())


class CliErrorsTest(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        # The default model (K = 3072) with a small maximum batch, so that a
        # batch of 100 rows is above gRPC's message limit, not only above
        # the batch limit.
        cls.server = sp.ServerProcess(ARGS.server, ["--max-batch", MAX_BATCH,
                                                    "--model-name", MODEL])
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.stop()

    def client(self, *args):
        return run([ARGS.client, *args])

    def test_version(self):
        for binary, name in ((ARGS.client, "reluserve-client"),
                             (ARGS.server, "reluserve-server")):
            result = run([binary, "--version"])
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertRegex(result.stdout, rf"^{name} \d+\.\d+\.\d+\n$")

    def test_misspelt_subcommand_is_a_usage_error_with_a_suggestion(self):
        result = self.client("infre")
        self.assertEqual(result.returncode, EXIT_USAGE, result.stderr)
        self.assertIn("unknown subcommand 'infre'; did you mean 'infer'?",
                      result.stderr)
        self.assertIn("reluserve-client --help", result.stderr)

    def test_bad_flags_are_usage_errors(self):
        for argv in ([ARGS.client, "infer", "--batch", "0"],
                     [ARGS.client, "health", "--no-such-flag"],
                     [ARGS.server, "--log-level", "loud"],
                     [ARGS.server, "--model-name", "a/b"],
                     [ARGS.server, "--port", "70000"]):
            with self.subTest(argv=argv[1:]):
                result = run(argv)
                self.assertEqual(result.returncode, EXIT_USAGE, result.stderr)
                self.assertIn("--help", result.stderr)

    def test_unreachable_server_exits_4_after_the_connect_timeout(self):
        # Bound but not listening: connections are refused, and no other
        # process can take the port meanwhile.
        with socket.socket() as held:
            held.bind((sp.LOOPBACK, 0))
            target = f"{sp.LOOPBACK}:{held.getsockname()[1]}"
            for command in ("health", "metadata", "infer"):
                with self.subTest(command=command):
                    start = time.monotonic()
                    result = self.client(command, "--target", target,
                                         "--connect-timeout-ms", 300)
                    elapsed = time.monotonic() - start
                    self.assertEqual(result.returncode, EXIT_UNREACHABLE,
                                     result.stderr)
                    self.assertIn(f"cannot reach {target}: no connection within "
                                  "300 ms", result.stderr)
                    self.assertLess(elapsed, 5.0)

    def test_target_from_the_environment(self):
        env = sp.loopback_env({"RELUSERVE_TARGET": self.server.target})
        result = subprocess.run([ARGS.client, "health", "--model", MODEL],
                                capture_output=True, text=True, env=env,
                                timeout=TIMEOUT_S)
        self.assertEqual(result.returncode, 0, result.stderr)

    def test_model_name_is_served(self):
        result = self.client("metadata", "--target", self.server.target,
                             "--model", MODEL)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"model       {MODEL}", result.stdout)
        result = self.client("health", "--target", self.server.target)
        self.assertEqual(result.returncode, 1, result.stdout)  # linear_relu: no
        self.assertIn("model ready  false", result.stdout)

    def test_oversize_fp32_batch_names_the_maximum_batch(self):
        for rows in (MAX_BATCH + 1, 100):  # inside and above gRPC's limit
            with self.subTest(rows=rows):
                result = self.client("infer", "--target", self.server.target,
                                     "--model", MODEL, "--batch", rows)
                self.assertEqual(result.returncode, 1, result.stderr)
                self.assertIn(f"x has {rows} rows, more than the maximum batch "
                              f"size of {MAX_BATCH}", result.stderr)
                self.assertNotIn("Received message larger", result.stderr)

    def test_oversize_batch_from_a_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "x.npy")
            np.save(path, np.zeros((100, 3, 32, 32), np.float32))
            result = self.client("infer", "--target", self.server.target,
                                 "--model", MODEL, "--x", path)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("x has 100 rows", result.stderr)

    def test_busy_port_says_what_to_do(self):
        port = self.server.port
        start = time.monotonic()
        result = run([ARGS.server, "--host", sp.LOOPBACK, "--port", port,
                      "--metrics-port", "0", "--http-port", "0"])
        output = result.stdout + result.stderr  # the log goes to stdout
        self.assertEqual(result.returncode, 1, output)
        self.assertLess(time.monotonic() - start, 20.0)
        self.assertIn(f"port {port} is already in use", output)
        self.assertIn("--port 0", output)
        # gRPC's own multi-line error dump is not shown.
        self.assertNotIn("chttp2_server", output)
        self.assertNotIn("created_time", output)
        # The first server still serves.
        self.assertEqual(self.client("health", "--target", self.server.target,
                                     "--model", MODEL).returncode, 0)


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
