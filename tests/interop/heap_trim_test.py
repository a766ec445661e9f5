#!/usr/bin/python3
"""--heap-trim-seconds against the real reluserve-server on 127.0.0.1
(docs/reliability.md, "Soak"): 8 concurrent backward passes through a
2048 x 2048 layer, each with a 16 MiB grad_weight reply, leave ~128 MiB of
free heap behind. With the trim (every 0.5 s) RSS falls back near where it
was before them within seconds; with --heap-trim-seconds 0 glibc keeps it
(the server keeps large buffers between calls on purpose). Registered for
builds without sanitizers only: their allocators are their own, and
malloc_trim does not reach them.

    /usr/bin/python3 -B heap_trim_test.py --server PATH --stubs DIR [-v]

Every wait is bounded in time and every request loop in count.
"""

import sys

sys.dont_write_bytecode = True

import concurrent.futures  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import server_process as sp  # noqa: E402

ARGS, UNITTEST_ARGV = sp.parse_cli(sys.argv)
if ARGS.stubs:
    sys.path.insert(0, os.path.abspath(ARGS.stubs))

import grpc  # noqa: E402
import numpy as np  # noqa: E402

import grpc_service_pb2 as pb  # noqa: E402
import grpc_service_pb2_grpc as pb_grpc  # noqa: E402

K = M = 2048
CALLERS = 8
RPC_TIMEOUT_S = 60.0
MIB = 1 << 20


def backward_request():
    req = pb.ModelInferRequest(model_name="linear_relu")
    for name, cols in (("x", K), ("grad_y", M)):
        req.inputs.add(name=name, datatype="FP32", shape=[1, cols])
        req.raw_input_contents.append(np.ones((1, cols), np.float32).tobytes())
    return req


def rss_after_a_burst(trim_seconds, settle_s):
    """(RSS before the burst, RSS `settle_s` after it), in bytes."""
    args = ["--in-features", K, "--out-features", M, "--max-batch", 4,
            "--heap-trim-seconds", trim_seconds]
    with sp.ServerProcess(ARGS.server, [str(a) for a in args]) as server:
        options = [("grpc.max_receive_message_length", -1)]
        with grpc.insecure_channel(server.target, options=options) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            stub.ModelInfer(backward_request(), timeout=RPC_TIMEOUT_S)
            before = sp.rss_bytes(server.pid)
            with concurrent.futures.ThreadPoolExecutor(CALLERS) as pool:
                replies = list(pool.map(
                    lambda _: stub.ModelInfer(backward_request(), timeout=RPC_TIMEOUT_S),
                    range(CALLERS)))
            for reply in replies:
                assert len(reply.raw_output_contents[2]) == K * M * 4
            time.sleep(settle_s)
            return before, sp.rss_bytes(server.pid)


class HeapTrimTest(unittest.TestCase):
    def test_free_heap_pages_go_back_to_the_kernel(self):
        before, after = rss_after_a_burst(0.5, settle_s=3)
        print(f"\n  trim every 0.5 s: RSS {before / MIB:.1f} MiB before the burst, "
              f"{after / MIB:.1f} MiB 3 s after it", file=sys.stderr)
        self.assertLess(after - before, 40 * MIB)

    def test_without_the_trim_the_heap_keeps_its_peak(self):
        before, after = rss_after_a_burst(0, settle_s=1)
        print(f"\n  no trim: RSS {before / MIB:.1f} MiB before the burst, "
              f"{after / MIB:.1f} MiB 1 s after it", file=sys.stderr)
        self.assertGreater(after - before, 64 * MIB)


if __name__ == "__main__":
    unittest.main(argv=UNITTEST_ARGV)
