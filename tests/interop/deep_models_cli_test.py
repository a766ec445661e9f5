#!/usr/bin/python3
"""Interop test, deep models through the project's own binaries: a
3-layer nn.Sequential served with --weights and --layers, then
`reluserve-client infer --x --grad-y --out` writes y, grad_x and every
grad_<P> as .npy, each matching torch autograd; `metadata` lists every
output; reluserve-load drives the same model (FP32 with --grad, BF16
forward) from its metadata with no error.

    /usr/bin/python3 -B deep_models_cli_test.py --server PATH --client PATH \
        --load PATH --stubs DIR [unittest args]

Shares its helpers with deep_models_test.py. Without --client or --load the
tests FAIL, saying so; without Debian's python3-torch too.
"""

import sys

sys.dont_write_bytecode = True

import json  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402
# Importing it parses the command line and puts the stubs on the path.
# TorchInstalledTest runs here too.
from deep_models_test import (ARGS, CLIENT_TIMEOUT_S, LAYERS_FLAG, LOAD,  # noqa: E402,F401
                              RPC_TIMEOUT_S, UNITTEST_ARGV, OipTestCase,
                              ServedCase, TorchInstalledTest, stats_by_key)

import numpy as np  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import torch_models as tm  # noqa: E402


class CliThreeLayerTest(ServedCase, OipTestCase):
    """reluserve-client (the CLI) on nn.Sequential(Linear, ReLU, Linear, ReLU,
    Linear), 3072 -> 64 -> 32 -> 10, served with --layers and --model-name:
    `infer --x x.npy --grad-y gy.npy --out DIR` writes x, grad_y, y, grad_x
    and grad_<P> for every parameter P as float32 .npy files, each output
    matching torch autograd like the gRPC answers above; `metadata` lists
    every input and output with its shape."""

    MODEL = "mlp3_cli"
    LAYERS = "linear,relu,linear,relu,linear"
    PARAMS = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]

    @classmethod
    def build(cls, tmp):
        module = tm.mlp(108, [3072, 64, 32, 10], final_relu=False)
        assert tm.layers_of(module) == cls.LAYERS
        path = os.path.join(tmp, "mlp3.safetensors")
        tm.save_state_dict(module, path)
        served = tm.ServedModel(module, layers=cls.LAYERS)
        assert served.param_names == cls.PARAMS, served.param_names
        return served, [sp.WEIGHTS_FLAG, path, LAYERS_FLAG, cls.LAYERS,
                        "--model-name", cls.MODEL]

    def client(self, *args):
        """Runs reluserve-client with `args` against this class's server and
        model; expects exit status 0 and returns its standard output."""
        if not ARGS.client:
            self.fail("no reluserve-client: pass --client PATH (CMake passes "
                      "$<TARGET_FILE:reluserve-client>)")
        if not (os.path.isfile(ARGS.client) and os.access(ARGS.client, os.X_OK)):
            self.fail(f"client binary not found or not executable: {ARGS.client}")
        argv = [ARGS.client, *[str(a) for a in args], "--target", self.server.target,
                "--model", self.MODEL]
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=CLIENT_TIMEOUT_S, env=sp.loopback_env())
        except subprocess.TimeoutExpired as e:
            self.fail(f"{shlex.join(argv)} did not finish within {CLIENT_TIMEOUT_S:.0f} s\n"
                      f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}")
        self.assertEqual(proc.returncode, 0,
                         f"{shlex.join(argv)} exited {proc.returncode}\n--- stdout ---\n"
                         f"{proc.stdout}--- stderr ---\n{proc.stderr}"
                         f"--- server log ---\n{self.server.log()}")
        return proc.stdout

    def load_npy(self, directory, name):
        path = os.path.join(directory, name + ".npy")
        self.assertTrue(os.path.isfile(path),
                        f"{path} missing; the directory holds {sorted(os.listdir(directory))}")
        a = np.load(path, allow_pickle=False)
        self.assertEqual(a.dtype, np.float32, f"{name}.npy dtype")
        return a

    def infer_from_files(self, x, gy):
        """`infer --x x.npy --grad-y gy.npy --out DIR`; returns DIR."""
        work = tempfile.mkdtemp(prefix="cli-infer-", dir=self.tmp.name)
        x_path, gy_path = os.path.join(work, "x.npy"), os.path.join(work, "gy.npy")
        np.save(x_path, x)
        np.save(gy_path, gy)
        out_dir = os.path.join(work, "out")
        self.client("infer", "--x", x_path, "--grad-y", gy_path, "--out", out_dir)
        return out_dir

    def test_cli_infer_writes_every_output_matching_autograd(self):
        # x flat, [N, 3072], and as images, [N, 3, 32, 32]: grad_x comes
        # back in the shape x was sent in.
        for seed, x_tail in ((20, None), (21, (3, 32, 32))):
            with self.subTest(x_tail=x_tail):
                x, gy = self.inputs(seed=seed, x_tail=x_tail)
                self.assertEqual(x.shape, (self.N, *(x_tail or (3072,))))
                out_dir = self.infer_from_files(x, gy)
                ref = self.served.reference(x, gy)
                self.assertEqual(list(ref),
                                 ["y", "grad_x"] + ["grad_" + p for p in self.PARAMS])
                self.assertEqual(sorted(os.listdir(out_dir)),
                                 sorted(name + ".npy" for name in ["x", "grad_y", *ref]),
                                 "--out holds the inputs and every output the server "
                                 "sent, one <name>.npy each")
                # The inputs as sent, bit for bit.
                np.testing.assert_array_equal(self.load_npy(out_dir, "x"), x)
                np.testing.assert_array_equal(self.load_npy(out_dir, "grad_y"), gy)
                for name, expected in ref.items():
                    self.assertMatches(name, self.load_npy(out_dir, name), expected)

    def run_load(self, *args):
        """reluserve-load against this class's model for 16 requests at
        concurrency 2; returns its one step from --json."""
        sp.require_load(self, LOAD)
        out = os.path.join(tempfile.mkdtemp(prefix="load-", dir=self.tmp.name), "r.json")
        argv = [LOAD, "--target", self.server.target, "--model", self.MODEL,
                "--concurrency", "2", "--warmup", "0", "--requests", "16",
                "--json", out, *[str(a) for a in args]]
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=CLIENT_TIMEOUT_S, env=sp.loopback_env())
        self.assertEqual(proc.returncode, 0,
                         f"{shlex.join(argv)}\n{proc.stdout}{proc.stderr}")
        with open(out, encoding="utf-8") as f:
            steps = json.load(f)["steps"]
        self.assertEqual(len(steps), 1)
        return steps[0]

    def test_load_generator_drives_the_stack_from_its_metadata(self):
        # --grad: every input the metadata lists, every output asked for
        # (the load generator checks each answer carries them all).
        before = stats_by_key(self.stub.ModelStatistics(
            pb.ModelStatisticsRequest(name=self.MODEL), timeout=RPC_TIMEOUT_S))
        for args in (["--batch", 4, "--grad"], ["--batch", 3, "--dtype", "bf16"]):
            step = self.run_load(*args)
            self.assertEqual(step["errors"], 0, (args, step))
            self.assertEqual(step["successes"], 16, (args, step))
        after = stats_by_key(self.stub.ModelStatistics(
            pb.ModelStatisticsRequest(name=self.MODEL), timeout=RPC_TIMEOUT_S))
        key = (self.MODEL, "1")
        self.assertEqual(after[key].inference_count - before[key].inference_count,
                         16 * 4 + 16 * 3)

    def test_cli_metadata_lists_every_parameter_gradient(self):
        text = self.client("metadata")
        sections, section = {"inputs": {}, "outputs": {}}, None
        for line in text.splitlines():
            if line in sections:
                section = sections[line]
            elif section is not None and line.startswith("  "):
                name, datatype, shape = line.split(None, 2)
                section[name] = (datatype, [int(d) for d in re.findall(r"-?\d+", shape)])
            else:
                section = None
        self.assertIn(self.MODEL, text)
        self.assertEqual(sections["inputs"],
                         {n: ("FP32", s) for n, s in self.served.input_specs()}, text)
        self.assertEqual(sections["outputs"],
                         {n: ("FP32", s) for n, s in self.served.output_specs()}, text)
        for p in self.PARAMS:
            self.assertIn("grad_" + p, sections["outputs"], text)


# -- a model repository --------------------------------------------------------


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
