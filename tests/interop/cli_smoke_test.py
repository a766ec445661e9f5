#!/usr/bin/python3
"""Smoke test of the `reluserve-client` CLI against the real reluserve-server
process on 127.0.0.1: health, metadata, and infer with .npy files in and out,
checked against a float64 numpy reference.

    /usr/bin/python3 -B cli_smoke_test.py --server PATH --client PATH [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import os  # noqa: E402
import pathlib  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402

ARGS, UNITTEST_ARGV = sp.parse_cli(sys.argv, need_client=True)

import numpy as np  # noqa: E402

MODEL = "linear_relu"
K = 37
M = 13
PREFIX = "fc."
CLIENT_TIMEOUT_S = 60.0
RTOL = 1e-5
ATOL = 1e-5
OUTPUTS = ("y", "grad_x", "grad_weight", "grad_bias")


W, B = sp.make_weights(0xC11, K, M)


class CliSmokeTest(unittest.TestCase):
    server = None
    tmp = None

    @classmethod
    def setUpClass(cls):
        if not (os.path.isfile(ARGS.client) and os.access(ARGS.client, os.X_OK)):
            raise AssertionError(f"client binary not found or not executable: {ARGS.client}")
        cls.tmp = tempfile.TemporaryDirectory(prefix="reluserve-cli-")
        weights = os.path.join(cls.tmp.name, "model.safetensors")
        sp.write_linear_weights(weights, W, B, prefix=PREFIX)
        cls.server = sp.ServerProcess(
            ARGS.server, [sp.WEIGHTS_FLAG, weights, sp.WEIGHTS_PREFIX_FLAG, PREFIX])
        try:
            cls.server.start()
        except BaseException:
            cls._shutdown(expect_code=None)
            raise

    @classmethod
    def tearDownClass(cls):
        cls._shutdown(expect_code=0)

    @classmethod
    def _shutdown(cls, expect_code):
        sp.stop_class_fixture(cls, expect_code)

    # -- helpers ---------------------------------------------------------
    def client(self, *args, expect_code=0, env=None):
        argv = [ARGS.client, *[str(a) for a in args]]
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=CLIENT_TIMEOUT_S, env=sp.loopback_env(env))
        except subprocess.TimeoutExpired as e:
            self.fail(f"{shlex.join(argv)} did not finish within {CLIENT_TIMEOUT_S:.0f} s\n"
                      f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}")
        out = proc.stdout.decode("utf-8", "replace")
        err = proc.stderr.decode("utf-8", "replace")
        if expect_code is not None:
            self.assertEqual(
                proc.returncode, expect_code,
                f"{shlex.join(argv)} exited {proc.returncode}\n--- stdout ---\n{out}"
                f"--- stderr ---\n{err}--- server log ---\n{self.server.log()}")
        return proc.returncode, out, err

    def outdir(self, name):
        """A fresh path under the temp dir, not yet created: `--out` must
        create it (test_infer_forward_only_from_file passes an existing one)."""
        return os.path.join(self.tmp.name, name)

    def load(self, directory, name):
        path = os.path.join(directory, name + ".npy")
        self.assertTrue(os.path.isfile(path), f"{path} missing; directory holds "
                        f"{sorted(os.listdir(directory)) if os.path.isdir(directory) else 'nothing'}")
        a = np.load(path, allow_pickle=False)
        self.assertEqual(a.dtype, np.float32, f"{name}.npy dtype")
        return a

    def assertClose(self, name, got, ref):
        self.assertEqual(tuple(got.shape), tuple(ref.shape), f"{name}: shape")
        got64 = np.asarray(got, np.float64)
        ref_norm = np.linalg.norm(ref)
        err = np.linalg.norm(got64 - ref)
        rel = err / ref_norm if ref_norm > 0 else err
        self.assertLessEqual(rel, RTOL, f"{name}: norm-wise relative error {rel:.3g}")
        np.testing.assert_allclose(got64, ref, rtol=RTOL, atol=ATOL, err_msg=name)

    def check_outputs(self, directory, x, gy):
        out = {name: self.load(directory, name) for name in OUTPUTS}
        n = x.shape[0]
        self.assertEqual(out["y"].shape, (n, M))
        self.assertEqual(out["grad_x"].shape, x.shape)
        self.assertEqual(out["grad_weight"].shape, (M, K))
        self.assertEqual(out["grad_bias"].shape, (M,))
        ref = dict(zip(OUTPUTS, sp.reference(x, W, B, gy, y_server=out["y"])))
        for name in OUTPUTS:
            self.assertClose(name, out[name], ref[name])

    # -- tests -------------------------------------------------------------
    def test_health(self):
        self.client("health", "--target", self.server.target)

    def test_health_without_a_model_checks_the_server_alone(self):
        _, out, _ = self.client("health", "--target", self.server.target, "--model", "")
        self.assertIn("not checked", out)
        # A model that is not served is not ready: exit 1.
        self.client("health", "--target", self.server.target, "--model", "absent",
                    expect_code=1)

    def test_target_flag_wins_over_the_environment_in_every_subcommand(self):
        # Nothing listens on port 1: the environment's target must lose.
        for command in ("health", "metadata", "infer"):
            self.client(command, "--target", self.server.target,
                        env={"RELUSERVE_TARGET": "127.0.0.1:1"})

    def test_metadata_mentions_model(self):
        _, out, err = self.client("metadata", "--target", self.server.target)
        self.assertIn(MODEL, out, f"stdout should name the model\nstderr: {err}")

    def test_infer_from_files(self):
        rng = np.random.default_rng(77)
        x = rng.standard_normal((5, K)).astype(np.float32)
        gy = rng.standard_normal((5, M)).astype(np.float32)
        pre = x.astype(np.float64) @ W.T.astype(np.float64) + B
        self.assertTrue((pre > 0).any() and (pre <= 0).any(), "test data must exercise ReLU")
        inputs = os.path.join(self.tmp.name, "inputs")
        os.makedirs(inputs, exist_ok=True)
        x_path = os.path.join(inputs, "x.npy")
        gy_path = os.path.join(inputs, "grad_y.npy")
        np.save(x_path, x)
        np.save(gy_path, gy)
        out_dir = self.outdir("out_files")
        self.client("infer", "--target", self.server.target, "--x", x_path,
                    "--grad-y", gy_path, "--out", out_dir)
        self.check_outputs(out_dir, x, gy)

    def test_infer_forward_only_from_file(self):
        rng = np.random.default_rng(78)
        x = rng.standard_normal((4, K)).astype(np.float32)
        x_path = os.path.join(self.tmp.name, "x_fwd.npy")
        np.save(x_path, x)
        out_dir = self.outdir("out_fwd")
        os.makedirs(out_dir)  # an existing directory must be accepted too
        self.client("infer", "--target", self.server.target, "--x", x_path, "--out", out_dir)
        y = self.load(out_dir, "y")
        x64 = x.astype(np.float64)
        self.assertClose("y", y, np.maximum(x64 @ W.T.astype(np.float64) + B, 0.0))

    def test_infer_random_batch_with_grad(self):
        out_dir = self.outdir("out_random")
        self.client("infer", "--batch", 3, "--grad", "--seed", 1, "--out", out_dir,
                    "--target", self.server.target)
        x = self.load(out_dir, "x")
        gy = self.load(out_dir, "grad_y")
        self.assertEqual(x.shape[0], 3)
        self.assertEqual(int(np.prod(x.shape[1:])), K, f"x shape {x.shape}")
        self.assertEqual(gy.shape, (3, M))
        self.check_outputs(out_dir, x, gy)

    def test_infer_random_is_reproducible(self):
        a, b = self.outdir("out_seed_a"), self.outdir("out_seed_b")
        for d in (a, b):
            self.client("infer", "--batch", 2, "--grad", "--seed", 5, "--out", d,
                        "--target", self.server.target)
        for name in ("x", "grad_y"):
            np.testing.assert_array_equal(self.load(a, name), self.load(b, name),
                                          err_msg=f"--seed 5 must give the same {name}")


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
