#!/usr/bin/python3
"""Interop test, corrupt weights and repository files against the real
server: each file is written by hand into a temporary directory
(safetensors: an 8-byte little-endian header length, the JSON header, the
data) and `reluserve-server --weights FILE` or `--model-repository DIR` is
started on it, bounded in time. Every one is refused at start-up: exit code
1 (kExitFailed), never a signal or a sanitizer report, nothing listening,
and the log naming the file and saying what is wrong.

- weights: huge header length, header length past the file, a file too
  short for it, a header that is not JSON or not an object, bad entries,
  out-of-file, reversed and overlapping offsets, F16, F64, BF16 and I64
  dtypes, shapes that disagree with the data, zero-size tensors, shapes
  that overflow, wrong ranks, a bias of another length, a missing weight,
  a tensor of another module, both state-dict forms, layers that do not
  chain, a truncated file, a directory or no file at all;
- repositories: config.pbtxt that does not parse or sets what ReluServe
  refuses, a model without a version folder, a version folder without its
  weights, corrupt weights inside a repository, layers that do not fit;
- and what the loader accepts: NaN in the weights loads, and y is NaN where
  a row meets it (IEEE, as PyTorch), finite elsewhere; no bias is a
  bias=False layer.

    /usr/bin/python3 -B malformed_files_test.py --server PATH --stubs DIR [unittest args]
"""

import sys

sys.dont_write_bytecode = True

import os  # noqa: E402
import pathlib  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402

ARGS, UNITTEST_ARGV = sp.parse_cli(sys.argv)
if ARGS.stubs:
    sys.path.insert(0, os.path.abspath(ARGS.stubs))

import concurrent.futures  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_service_pb2_grpc as pb_grpc  # noqa: E402
import malformed_cases as mc  # noqa: E402
import tensor_files as tf  # noqa: E402

K, M = 5, 3
START_TIMEOUT_S = 30.0


def f32(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("<f4")


def safetensors(entries, data, header=None, length=None):
    """A safetensors file by hand: `entries` (name -> dtype, shape, [begin,
    end]) as the JSON header unless `header` gives its bytes, padded to 8
    bytes; `length` the 8-byte header length if not the header's own."""
    if header is None:
        header = json.dumps({name: {"dtype": d, "shape": s, "data_offsets": o}
                             for name, (d, s, o) in entries.items()}).encode()
        header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header) if length is None else length) + header + data


def good_linear():
    return {"weight": f32((M, K), 1), "bias": f32(M, 2)}


def with_tensors(tensors):
    return sp.safetensors_bytes(tensors)


def weight_cases():
    """(name, file bytes, fragments the log must hold besides the path)."""
    good = with_tensors(good_linear())
    (head_len,) = struct.unpack("<Q", good[:8])
    wb, bb = M * K * 4, M * 4
    data = f32(M * K + M, 3).tobytes()
    f16 = np.zeros(M * K, "<f2").tobytes() + np.zeros(M, "<f2").tobytes()
    f64 = np.zeros(M * K, "<f8").tobytes() + np.zeros(M, "<f8").tobytes()
    sequential = {"0.weight": f32((4, K)), "0.bias": f32(4), "2.weight": f32((M, 4)),
                  "2.bias": f32(M)}

    def entries(weight=("F32", [M, K], [0, wb]), bias=("F32", [M], [wb, wb + bb])):
        return {"weight": weight, "bias": bias}

    return [
        ("huge header length", safetensors({}, b"", header=b"{}      ", length=(1 << 63) + 7),
         ["header length", "is absurd"]),
        ("header length past the file", struct.pack("<Q", len(good)) + good[8:],
         [f"header length {len(good)}", "exceeds the"]),
        ("file too short for the header length", b"\x08\x00\x00", ["is 3 bytes", "too short"]),
        ("empty file", b"", ["is 0 bytes"]),
        ("header not JSON", safetensors({}, data, header=b"not json at all!"),
         ["header is not valid JSON"]),
        ("header not UTF-8 JSON", safetensors({}, data, header=b'{"\xff": 1}     '),
         ["header is not valid JSON"]),
        ("header a JSON array", safetensors({}, data, header=b"[1, 2, 3]       "),
         ["header is not a JSON object"]),
        ("entry not an object", safetensors({}, data, header=b'{"weight": 7}   '),
         ["tensor 'weight' entry is not a JSON object"]),
        ("entry without dtype",
         safetensors({}, data, header=json.dumps(
             {"weight": {"shape": [M, K], "data_offsets": [0, wb]}}).encode()),
         ["tensor 'weight' has no dtype string"]),
        ("negative dimension", safetensors(entries(weight=("F32", [-M, K], [0, wb])), data),
         ["tensor 'weight'", "not a non-negative integer"]),
        ("three data offsets", safetensors(entries(weight=("F32", [M, K], [0, wb, wb])), data),
         ["tensor 'weight' has bad data_offsets"]),
        ("offsets out of the file",
         safetensors(entries(bias=("F32", [M], [wb, wb + bb + 4096])), data),
         ["tensor 'bias'", "beyond the data section"]),
        ("offsets reversed", safetensors(entries(bias=("F32", [M], [wb + bb, wb])), data),
         ["tensor 'bias'", "begin > end"]),
        ("offsets overlapping",
         safetensors(entries(bias=("F32", [M], [wb - 4, wb + bb - 4])), data),
         ["'weight'", "'bias'", "overlap"]),
        ("F16 dtype", safetensors(entries(("F16", [M, K], [0, wb // 2]),
                                          ("F16", [M], [wb // 2, (wb + bb) // 2])), f16),
         ["has dtype F16, expected F32"]),
        ("F64 dtype", safetensors(entries(("F64", [M, K], [0, wb * 2]),
                                          ("F64", [M], [wb * 2, (wb + bb) * 2])), f64),
         ["has dtype F64, expected F32"]),
        ("BF16 dtype", safetensors(entries(("BF16", [M, K], [0, wb // 2]),
                                           ("BF16", [M], [wb // 2, (wb + bb) // 2])), f16),
         ["has dtype BF16, expected F32"]),
        ("I64 dtype", safetensors(entries(("I64", [M, K], [0, wb * 2]),
                                          ("I64", [M], [wb * 2, (wb + bb) * 2])), f64),
         ["has dtype I64, expected F32"]),
        ("shape larger than its data", safetensors(entries(weight=("F32", [M, K + 1], [0, wb])),
                                                   data),
         ["tensor 'weight'", f"has {wb} data bytes", f"[{M},{K + 1}]", f"needs {wb + M * 4}"]),
        ("shape smaller than its data", safetensors(entries(weight=("F32", [M, K - 1], [0, wb])),
                                                    data),
         ["tensor 'weight'", f"has {wb} data bytes", f"needs {wb - M * 4}"]),
        ("zero-size tensors", safetensors(entries(("F32", [0, K], [0, 0]), ("F32", [0], [0, 0])),
                                          b""),
         ["with a zero dimension"]),
        ("shape whose size overflows",
         safetensors(entries(weight=("F32", [1 << 62, 1 << 62], [0, wb])), data),
         ["tensor 'weight'", "overflows"]),
        ("weight of rank 3", with_tensors({"weight": f32((M, K, 1)), "bias": f32(M)}),
         ["tensor 'weight'", "rank 3, expected rank 2"]),
        ("bias of rank 2", with_tensors({"weight": f32((M, K)), "bias": f32((M, 1))}),
         ["tensor 'bias'", "rank 2, expected rank 1"]),
        ("bias of another length", with_tensors({"weight": f32((M, K)), "bias": f32(M + 1)}),
         ["'bias' has length 4", f"'weight' has {M} rows"]),
        ("bias without its weight", with_tensors({"bias": f32(M)}),
         ["tensor 'bias' has no 'weight'"]),
        ("no tensors", safetensors({}, b"", header=b"{}      "), ["no Linear parameters"]),
        ("a tensor of another module",
         with_tensors({**good_linear(), "running_mean": f32(M)}),
         ["'running_mean'", "is not a Linear parameter"]),
        ("both state-dict forms", with_tensors({**good_linear(), "0.weight": f32((M, K)),
                                                "0.bias": f32(M)}),
         ["both 'weight'", "'0.weight'"]),
        ("layers that do not chain",
         with_tensors({"0.weight": f32((8, 4)), "0.bias": f32(8), "2.weight": f32((3, 5)),
                       "2.bias": f32(3)}),
         ["layers do not chain", "'0.weight' has shape [8,4]", "'2.weight' has shape [3,5]",
          "expected 8"]),
        ("deep model truncated in its last tensor", with_tensors(sequential)[:-5],
         ["tensor '2.bias'", "beyond the data section", "truncated file?"]),
        ("truncated in the header", good[:8 + head_len // 2],
         [f"header length {head_len}", "truncated header"]),
    ]


LAYERS = 'parameters { key: "layers" value: { string_value: "%s" } }\n'


def repository_cases():
    """(name, build(root) -> (path the log must name, fragments)); each
    builds its broken model beside the good one already in `root`."""

    def model(root, name, blob=None, config=None, version="1"):
        folder = os.path.join(root, name)
        os.makedirs(os.path.join(folder, version), exist_ok=True)
        weights = os.path.join(folder, version, "model.safetensors")
        if blob is not False:
            with open(weights, "wb") as f:
                f.write(with_tensors(good_linear()) if blob is None else blob)
        if config is not None:
            with open(os.path.join(folder, "config.pbtxt"), "w", encoding="utf-8") as f:
                f.write(config)
        return folder, weights

    def broken_config(text, *fragments):
        def build(root):
            folder, _ = model(root, "broken", config=text)
            return os.path.join(folder, "config.pbtxt"), list(fragments)
        return build

    def broken_weights(blob, *fragments, version="1"):
        def build(root):
            if version != "1":
                model(root, "broken")
            _, weights = model(root, "broken", blob, version=version)
            return weights, list(fragments)
        return build

    def no_version(root):
        folder, _ = model(root, "broken", blob=False, config="max_batch_size: 4\n")
        os.rmdir(os.path.join(folder, "1"))
        os.makedirs(os.path.join(folder, "latest"))
        return folder, ["latest"]

    def no_weights(root):
        _, weights = model(root, "broken", blob=False)
        return weights, ["missing"]

    def config_a_directory(root):
        folder, _ = model(root, "broken")
        os.makedirs(os.path.join(folder, "config.pbtxt"))
        return os.path.join(folder, "config.pbtxt"), ["not a regular file"]

    def bad_folder_name(root):
        folder, _ = model(root, "bad name!")
        return folder, ["rename the folder"]

    def layers_that_do_not_fit(root):
        blob = with_tensors({"0.weight": f32((4, K)), "0.bias": f32(4),
                             "2.weight": f32((M, 4)), "2.bias": f32(M)})
        _, weights = model(root, "broken", blob, config=LAYERS % "linear")
        return weights, ["parameter 'layers'", "layers 'linear'", "expected 2"]

    chain = with_tensors({"0.weight": f32((8, 4)), "0.bias": f32(8), "2.weight": f32((3, 5)),
                          "2.bias": f32(3)})
    return [
        ("config.pbtxt that does not parse",
         broken_config("max_batch_size: 4\nparameters {\n", "config.pbtxt:3:1",
                       "Expected identifier")),
        ("max_batch_size of the wrong type",
         broken_config('max_batch_size: "eight"\n', "config.pbtxt:1:17", "Expected integer",
                       '"eight"')),
        ("negative max_batch_size",
         broken_config("max_batch_size: -4\n", "max_batch_size -4 is negative")),
        ("an unsupported field", broken_config("instance_group [ { count: 2 } ]\n",
                                               "instance_group", "remove it")),
        ("config with inputs", broken_config('input [ { name: "x" } ]\n', "sets input")),
        ("another platform", broken_config('platform: "tensorflow_savedmodel"\n',
                                           "platform 'tensorflow_savedmodel'")),
        ("backward neither true nor false",
         broken_config('parameters { key: "backward" value: { string_value: "maybe" } }\n',
                       "'backward'", "'maybe'")),
        ("unknown layers entry", broken_config(LAYERS % "linear,softmax", "softmax")),
        ("config.pbtxt a directory", config_a_directory),
        ("model without a version folder", no_version),
        ("version folder without its weights", no_weights),
        ("model folder name with a space", bad_folder_name),
        ("weights whose header is not JSON",
         broken_weights(safetensors({}, b"", header=b"not json"), "header is not valid JSON")),
        ("weights of F64 in a second version",
         broken_weights(with_tensors({"weight": f32((M, K)).astype("<f8"),
                                      "bias": f32(M).astype("<f8")}),
                        "has dtype F64, expected F32", version="2")),
        ("weights truncated", broken_weights(with_tensors(good_linear())[:-3],
                                             "beyond the data section")),
        ("layers that do not chain", broken_weights(chain, "layers do not chain")),
        ("layers that do not fit the weights", layers_that_do_not_fit),
    ]


def run_server(args):
    """(returncode, log, seconds) of the server started with `args`;
    returncode None when it did not exit within START_TIMEOUT_S (killed)."""
    argv = [ARGS.server, "--host", sp.LOOPBACK, "--port", "0", "--http-port", "0",
            "--metrics-port", "0", *[str(a) for a in args]]
    start = time.monotonic()
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, errors="replace", timeout=START_TIMEOUT_S,
                                env=sp.loopback_env())
    except subprocess.TimeoutExpired as e:
        return None, f"{e.stdout}{e.stderr}", time.monotonic() - start
    return result.returncode, f"{result.stdout}{result.stderr}", time.monotonic() - start


class RefusedFilesTest(unittest.TestCase):
    """Every corrupt file: exit 1 at start-up, the log naming the file and
    the problem. PARALLEL servers at a time: a refused start-up mostly waits."""

    PARALLEL = 4

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="reluserve-malformed-files-")
        self.addCleanup(self.tmp.cleanup)

    def run_all(self, jobs):
        """jobs: (name, args, path, fragments); checks each one's outcome."""
        with concurrent.futures.ThreadPoolExecutor(self.PARALLEL) as pool:
            outcomes = list(pool.map(lambda job: run_server(job[1]), jobs))
        for (name, _, path, fragments), (code, log, seconds) in zip(jobs, outcomes):
            with self.subTest(case=name):
                context = f"{name} ({seconds:.1f} s):\n{log}"
                self.assertIsNotNone(code, f"no exit within {START_TIMEOUT_S:.0f} s: {context}")
                self.assertGreaterEqual(code, 0, f"killed by a signal: {context}")
                self.assertEqual(code, 1, context)
                self.assertIsNone(sp.CRASH_RE.search(log), context)
                self.assertNotRegex(log, sp.LISTENING_RE, context)
                self.assertIn("cannot load the model", log, context)
                self.assertIn(str(path), log, f"the log must name the file: {context}")
                for fragment in fragments:
                    self.assertIn(fragment, log, context)

    def test_corrupt_weights_files(self):
        jobs = []
        for i, (name, blob, fragments) in enumerate(weight_cases()):
            path = os.path.join(self.tmp.name, f"case{i}.safetensors")
            with open(path, "wb") as f:
                f.write(blob)
            jobs.append((name, [sp.WEIGHTS_FLAG, path], path, fragments))
        self.assertGreaterEqual(len(jobs), 30)
        self.run_all(jobs)

    def test_broken_repositories(self):
        jobs = []
        for i, (name, build) in enumerate(repository_cases()):
            root = os.path.join(self.tmp.name, f"repo{i}")
            os.makedirs(os.path.join(root, "good", "1"))
            tf.write_safetensors(os.path.join(root, "good", "1", "model.safetensors"),
                                 good_linear())
            path, fragments = build(root)
            jobs.append((name, ["--model-repository", root], path, fragments))
        self.run_all(jobs)

    def test_paths_that_are_not_files_are_usage_errors(self):
        # The command line checks these before loading: exit 2 (a wrong
        # command line), naming the path.
        afile = os.path.join(self.tmp.name, "a-file")
        open(afile, "wb").close()
        missing = os.path.join(self.tmp.name, "missing.safetensors")
        for args, fragment in (([sp.WEIGHTS_FLAG, missing], "does not exist"),
                               ([sp.WEIGHTS_FLAG, self.tmp.name], "is actually a directory"),
                               (["--model-repository", missing], "does not exist"),
                               (["--model-repository", afile], "is actually a file")):
            with self.subTest(args=args):
                code, log, _ = run_server(args)
                self.assertEqual(code, 2, log)
                self.assertIn(args[1], log)
                self.assertIn(fragment, log)


class AcceptedWeightsTest(unittest.TestCase):
    """What the loader takes: NaN weights load (IEEE arithmetic: y is NaN
    where a row meets one, as in PyTorch); no bias is bias=False."""

    def serve(self, tensors):
        tmp = tempfile.TemporaryDirectory(prefix="reluserve-malformed-accepted-")
        self.addCleanup(tmp.cleanup)
        path = tf.write_safetensors(os.path.join(tmp.name, "model.safetensors"), tensors)
        server = sp.ServerProcess(ARGS.server, [sp.WEIGHTS_FLAG, path])
        server.start()
        self.addCleanup(server.stop)
        channel = grpc.insecure_channel(server.target, options=mc.CHANNEL_OPTIONS)
        self.addCleanup(channel.close)
        return pb_grpc.GRPCInferenceServiceStub(channel)

    def infer_y(self, stub, x):
        resp = stub.ModelInfer(mc.grpc_request("linear_relu", [mc.T("x", x)]),
                               timeout=mc.RPC_TIMEOUT_S)
        self.assertEqual([t.name for t in resp.outputs], ["y"])
        return np.frombuffer(resp.raw_output_contents[0], "<f4").reshape(len(x), -1)

    def test_nan_in_the_weights_loads_and_propagates(self):
        weights = good_linear()
        weights["weight"][1, 2] = np.nan
        weights["bias"][2] = np.nan
        y = self.infer_y(self.serve(weights), f32((4, K), 9))
        self.assertTrue(np.isnan(y[:, 1]).all() and np.isnan(y[:, 2]).all(), y)
        self.assertTrue(np.isfinite(np.delete(y, [1, 2], axis=1)).all(), y)

    def test_no_bias_is_a_bias_free_layer(self):
        weight = f32((M, K), 4)
        x = f32((3, K), 5)
        y = self.infer_y(self.serve({"weight": weight}), x)
        np.testing.assert_allclose(y, np.maximum(x.astype(np.float64) @ weight.T, 0.0),
                                   rtol=1e-5, atol=1e-6)


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
