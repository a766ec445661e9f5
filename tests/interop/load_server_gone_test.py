#!/usr/bin/python3
"""Regression test of `reluserve-load` when there is no server to load: the
real reluserve-server on 127.0.0.1 is stopped (SIGTERM: draining) or killed
(SIGKILL) in the middle of a 30 s step, and reluserve-load must notice within
a few seconds, say "server went away", exit 4 and have recorded a bounded
number of errors (it used to spin until the step's end, recording some
150,000 UNAVAILABLE errors a second). Also: a port nothing listens on fails
within about the connect timeout with exit 4, --version exits 0, and a bad
flag exits 2.

    /usr/bin/python3 -B load_server_gone_test.py --server PATH --load PATH [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import json  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402

ARGS, LOAD, UNITTEST_ARGV = sp.parse_load_cli(sys.argv)

EXIT_USAGE = 2
EXIT_UNREACHABLE = 4

# The step would run this long if nothing stopped it.
STEP_DURATION_S = 30
# Load before the server goes: warm-up (0.2 s) and some measuring.
RUN_BEFORE_STOP_S = 1.5
# From the server's end to reluserve-load's exit: 1.5 s of UNAVAILABLE
# answers decide it, plus drain and start-up slack on a busy machine.
EXIT_WITHIN_S = 6.0
# Hard bound on any wait for reluserve-load.
LOAD_TIMEOUT_S = 20.0
# Against 157,455 UNAVAILABLE errors in about 2 s before the fix.
MAX_ERRORS = 2000


def held_port():
    """A socket bound to 127.0.0.1:<free port> but not listening: connections
    to it are refused, and nothing else can take the port meanwhile."""
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.bind((sp.LOOPBACK, 0))
    return held, held.getsockname()[1]


class LoadServerGoneTest(unittest.TestCase):
    def setUp(self):
        sp.require_load(self, LOAD)

    def run_load(self, args, timeout=LOAD_TIMEOUT_S):
        """Runs reluserve-load to its end (bounded); returns (proc, seconds,
        stdout, stderr)."""
        argv = [LOAD, *args]
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout, env=sp.loopback_env(),
                                  preexec_fn=sp._die_with_parent)
        except subprocess.TimeoutExpired as e:
            self.fail(f"{shlex.join(argv)} did not finish within {timeout:.0f} s\n"
                      f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}")
        return (proc, time.monotonic() - start, proc.stdout.decode("utf-8", "replace"),
                proc.stderr.decode("utf-8", "replace"))

    def check_server_goes_away(self, sig):
        with tempfile.TemporaryDirectory(prefix="reluserve-load-gone-") as tmp:
            out = os.path.join(tmp, "out.json")
            server = sp.ServerProcess(ARGS.server)
            server.start()
            load = None
            try:
                argv = [LOAD, "--target", server.target, "--duration", str(STEP_DURATION_S),
                        "--warmup", "0.2", "--concurrency", "8,16", "--batch", "4",
                        "--json", out]
                load = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        env=sp.loopback_env(), preexec_fn=sp._die_with_parent)
                time.sleep(RUN_BEFORE_STOP_S)
                if load.poll() is not None:
                    self.fail("reluserve-load ended before the server was stopped: "
                              f"exit {load.returncode}, {load.communicate(timeout=5)!r}")
                os.kill(server.pid, sig)
                stopped = time.monotonic()
                try:
                    stdout, stderr = load.communicate(timeout=LOAD_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    load.kill()
                    stdout, stderr = load.communicate(timeout=5)
                    self.fail(f"reluserve-load still running {LOAD_TIMEOUT_S:.0f} s after "
                              f"the server got signal {sig}\nstdout: {stdout!r}\n"
                              f"stderr: {stderr!r}")
                took = time.monotonic() - stopped
            finally:
                if load is not None and load.poll() is None:
                    load.kill()
                    load.wait(timeout=5)
                # SIGTERM: the server drains and exits 0; SIGKILL: it is gone.
                server.stop(expect_code=0 if sig == signal.SIGTERM else None)
            stdout = stdout.decode("utf-8", "replace")
            stderr = stderr.decode("utf-8", "replace")
            context = (f"{shlex.join(argv)}\nsignal {sig}, exit {load.returncode} after "
                       f"{took:.2f} s\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
                       f"--- server log ---\n{server.log()}")
            self.assertEqual(load.returncode, EXIT_UNREACHABLE, context)
            self.assertLess(took, EXIT_WITHIN_S, context)
            self.assertRegex(stdout, r"server went away at t=\d+\.\d+ s", context)
            self.assertIn("server went away", stderr, context)
            with open(out, encoding="utf-8") as f:
                report = json.load(f)

        steps = report["steps"]
        self.assertEqual(len(steps), 1, context)  # the 16-slot step never ran
        step = steps[0]
        self.assertTrue(step["server_gone"], context)
        self.assertGreater(step["server_gone_at_s"], 0, context)
        self.assertLess(step["server_gone_at_s"], RUN_BEFORE_STOP_S + 2.0, context)
        self.assertGreater(step["successes"], 0, context)  # measured before
        self.assertGreater(step["errors"], 0, context)
        self.assertLess(step["errors"], MAX_ERRORS, context)
        self.assertEqual(set(step["errors_by_code"]), {"UNAVAILABLE"}, context)
        self.assertLess(step["seconds"], RUN_BEFORE_STOP_S + EXIT_WITHIN_S, context)

    def test_server_drained_mid_run(self):
        self.check_server_goes_away(signal.SIGTERM)

    def test_server_killed_mid_run(self):
        self.check_server_goes_away(signal.SIGKILL)

    def test_nothing_listening(self):
        held, port = held_port()
        try:
            proc, took, stdout, stderr = self.run_load(
                ["--target", f"{sp.LOOPBACK}:{port}", "--duration", "2"])
        finally:
            held.close()
        context = f"exit {proc.returncode} after {took:.2f} s\nstdout: {stdout}\nstderr: {stderr}"
        self.assertEqual(proc.returncode, EXIT_UNREACHABLE, context)
        self.assertLess(took, 2.5, context)  # the default --connect-timeout-ms 1000
        self.assertIn(f"cannot reach {sp.LOOPBACK}:{port}: no connection within 1000 ms",
                      stderr, context)
        self.assertIn("--connect-timeout-ms", stderr, context)
        self.assertEqual(stdout, "", context)

    def test_connect_timeout_flag(self):
        held, port = held_port()
        try:
            proc, took, _, stderr = self.run_load(
                ["--target", f"{sp.LOOPBACK}:{port}", "--connect-timeout-ms", "200"])
        finally:
            held.close()
        context = f"exit {proc.returncode} after {took:.2f} s\nstderr: {stderr}"
        self.assertEqual(proc.returncode, EXIT_UNREACHABLE, context)
        self.assertLess(took, 1.5, context)
        self.assertIn("no connection within 200 ms", stderr, context)

    def test_version(self):
        proc, _, stdout, stderr = self.run_load(["--version"])
        self.assertEqual(proc.returncode, 0, stderr)
        self.assertRegex(stdout, r"^reluserve-load \d+\.\d+\.\d+\n$")

    def test_help_documents_exit_statuses_and_late(self):
        proc, _, stdout, stderr = self.run_load(["--help"])
        self.assertEqual(proc.returncode, 0, stderr)
        self.assertIn("--connect-timeout-ms", stdout)
        self.assertIn("Exit status:", stdout)
        for status in range(5):
            self.assertRegex(stdout, rf"\n  {status}  \S", stdout)
        self.assertRegex(stdout, r"late +requests sent more than 1 ms after their scheduled")

    def test_usage_errors(self):
        for args in (["--no-such-flag"], ["--concurrency", "0"], ["--rate", "x"],
                     ["--connect-timeout-ms", "0"]):
            proc, _, stdout, stderr = self.run_load(args)
            context = f"{args}: exit {proc.returncode}\nstdout: {stdout}\nstderr: {stderr}"
            self.assertEqual(proc.returncode, EXIT_USAGE, context)
            self.assertIn("--help", stderr, context)
            self.assertTrue(re.search(r"^reluserve-load: ", stderr), context)


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
