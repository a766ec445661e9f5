#!/usr/bin/python3
"""Smoke test of `reluserve-load` against the real reluserve-server process on
127.0.0.1: a two-step closed-loop sweep (about 5 s) whose JSON report must
show two steps, throughput, no errors and ordered percentiles.

    /usr/bin/python3 -B load_smoke_test.py --server PATH --load PATH [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import json  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402

ARGS, LOAD, UNITTEST_ARGV = sp.parse_load_cli(sys.argv)

# 2 steps x (0.5 s warm-up + 2 s), plus connecting: well under this.
LOAD_TIMEOUT_S = 60.0


class LoadSmokeTest(unittest.TestCase):
    def test_closed_loop_sweep(self):
        sp.require_load(self, LOAD)
        with tempfile.TemporaryDirectory(prefix="reluserve-load-") as tmp, \
                sp.ServerProcess(ARGS.server) as server:
            out = os.path.join(tmp, "out.json")
            argv = [LOAD, "--target", server.target, "--duration", "2", "--warmup", "0.5",
                    "--concurrency", "1,4", "--batch", "4", "--json", out]
            try:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                      timeout=LOAD_TIMEOUT_S, env=sp.loopback_env())
            except subprocess.TimeoutExpired as e:
                self.fail(f"{shlex.join(argv)} did not finish within {LOAD_TIMEOUT_S:.0f} s\n"
                          f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}")
            stdout = proc.stdout.decode("utf-8", "replace")
            stderr = proc.stderr.decode("utf-8", "replace")
            context = (f"{shlex.join(argv)}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
                       f"--- server log ---\n{server.log()}")
            self.assertEqual(proc.returncode, 0, context)
            with open(out, encoding="utf-8") as f:
                report = json.load(f)

        steps = report["steps"]
        self.assertEqual(len(steps), 2, context)
        self.assertEqual([s["concurrency"] for s in steps], [1, 4], context)
        for step in steps:
            self.assertGreater(step["requests_per_second"], 0, context)
            self.assertAlmostEqual(step["rows_per_second"], 4 * step["requests_per_second"],
                                   delta=1e-6 * step["rows_per_second"])
            self.assertEqual(step["errors"], 0, context)
            self.assertEqual(step["errors_by_code"], {}, context)
            latency = step["latency_ms"]
            self.assertGreater(latency["count"], 0, context)
            self.assertGreater(latency["p50"], 0, context)
            self.assertLessEqual(latency["p50"], latency["p99"], context)
            self.assertLessEqual(latency["p99"], latency["max"], context)
        # The table went to stdout.
        self.assertIn("p99 ms", stdout)


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
