#!/usr/bin/python3
"""Tunes the peer: req/s of peer_server.py for each ThreadPoolExecutor
max_workers and torch.set_num_threads setting, and of --aio at each
torch.set_num_threads, per shape (N=1 and N=100, forward and
forward+backward), driven by reluserve-load at 8 in flight over 8
channels, as scripts/bench.py drives it. Prints a markdown table.

    /usr/bin/python3 bench/peer/tune_peer.py [--duration 3] [--workers 1,2,4,8]
        [--torch-threads 1,2]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "scripts"))
from bench_servers import SHAPES, Binaries, Server, load_args, measure  # noqa: E402


def numbers(text):
    return [int(value) for value in text.split(",")]


def cell(binaries, server, n, grad, options):
    """req/s of one step, and its errors if any."""
    result = measure(binaries.load, server, load_args(
        n, grad, options.concurrency, options.duration, options.warmup),
        options.duration, options.warmup)
    errors = f" ({result['errors']} errors)" if result["errors"] else ""
    return f"{result['rps']:.0f}{errors}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", default="build/release")
    parser.add_argument("--duration", default="3")
    parser.add_argument("--warmup", default="1")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=numbers, default=[1, 2, 4, 8])
    parser.add_argument("--torch-threads", type=numbers, default=[1, 2])
    options = parser.parse_args()
    binaries = Binaries(options.build)
    print("| server | torch threads | " +
          " | ".join(f"{label} req/s" for label, _, _ in SHAPES) + " |")
    print("|---|---|" + "---|" * len(SHAPES))
    for threads in options.torch_threads:
        for mode in [["--workers", str(w)] for w in options.workers] + [["--aio"]]:
            command = binaries.peer(*mode, "--torch-threads", str(threads))
            with Server(command) as server:
                cells = [cell(binaries, server, n, grad, options)
                         for _, n, grad in SHAPES]
            name = "grpc.aio" if mode == ["--aio"] else f"{mode[1]} workers"
            print(f"| {name} | {threads} | " + " | ".join(cells) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
